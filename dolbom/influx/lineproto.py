"""InfluxDB line protocol: escaping of tag and string field values, number fields.

Escaping follows the line protocol reference: in tag values ``,``, ``=`` and space
are escaped (a backslash, which no id can contain, becomes ``/``); in string field
values ``\\`` and ``"``. A newline cannot be escaped in line protocol at all, so
control characters in strings are replaced: no value can ever end a line early and
start a point of its own.
"""

from __future__ import annotations

_TAG_ESCAPE = str.maketrans({
    **{chr(c): "\\ " for c in range(32)}, "\x7f": "\\ ",
    # InfluxDB 1.6 cannot parse a tag value that ends in an escaped backslash
    # ("invalid tag format"); ids never contain one, so it is replaced instead.
    "\\": "/", ",": "\\,", "=": "\\=", " ": "\\ ",
})
_CTRL = {c: " " for c in range(32)}
_CTRL[127] = " "
_FIELD_ESCAPE = str.maketrans({**_CTRL, ord("\\"): "\\\\", ord('"'): '\\"'})


def tag(value: str) -> str:
    """Escape a tag value (ids are already restricted; this is the second wall)."""
    return value.translate(_TAG_ESCAPE)


def str_field(value: str) -> str:
    """A quoted, escaped string field value."""
    return '"' + value.translate(_FIELD_ESCAPE) + '"'


def num(value: float) -> str:
    return repr(float(value))
