"""InfluxQL text: identifiers and string literals made safe, and the 1-hour rollup's
SELECT (the continuous query's, and the same run by hand over a past range).

Values that InfluxQL can bind go as bound parameters (``dolbom.influx.query``); these are
for what it cannot bind: names in statements, and passwords in admin statements.
"""

from __future__ import annotations

from dolbom.protocol import READINGS


def safe_name(name: str) -> str:
    """``name`` if it is a safe InfluxDB name (letters, digits, ``_``, ``-``), else
    ValueError."""
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"unsafe InfluxDB identifier {name!r}")
    return name


def ident(name: str) -> str:
    """A safe name, double-quoted: an InfluxQL identifier."""
    return f'"{safe_name(name)}"'


def lit(value: str) -> str:
    """A single-quoted, escaped InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rollup_1h_select(db: str, where: str = "") -> str:
    """The 1-hour rollup: hourly means of the per-home 1-minute rollups (``where``: a
    ``WHERE`` clause, to run it by hand over a past range)."""
    fields = ", ".join(f'mean("{f}") AS "{f}"' for f in sorted(READINGS))
    return (f'SELECT {fields}, sum("samples") AS "samples" '  # noqa: S608 - fixed names
            f'INTO {db}."rollup"."reading_1h" FROM {db}."rollup"."reading_1m" {where} '
            "GROUP BY time(1h), *")
