"""InfluxDB line protocol: escaping of tag and string field values, number fields, and
``line``, one point from its parts. Every line Dolbom writes is built with these.

Escaping follows the line protocol reference: in tag values ``,``, ``=`` and space
are escaped (a backslash, which no id can contain, becomes ``/``); in string field
values ``\\`` and ``"``. A newline cannot be escaped in line protocol at all, so
control characters in strings are replaced: no value can ever end a line early and
start a point of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def field(value: float | int | bool | str) -> str:
    """A field value by its Python type: float, integer (``i``), boolean, or string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return num(value)
    return str_field(value)


def line(measurement: str, tags: Mapping[str, str],
         fields: Mapping[str, float | int | bool | str], ts_ms: int) -> bytes:
    """One point: ``measurement`` and the field and tag names are Dolbom's own constants
    (not escaped); tag values are escaped. The time is in ms (writes use
    ``precision=ms``)."""
    tag_set = "".join(f",{k}={tag(v)}" for k, v in tags.items())
    field_set = ",".join(f"{k}={field(v)}" for k, v in fields.items())
    return f"{measurement}{tag_set} {field_set} {ts_ms}".encode()
