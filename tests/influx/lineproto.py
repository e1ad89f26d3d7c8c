"""A strict reference parser of InfluxDB line protocol, for tests only."""

from __future__ import annotations


def _unescape_until(s: str, i: int, stops: str) -> tuple[str, int]:
    out = []
    while i < len(s) and s[i] not in stops:
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ",= \\":
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out), i


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """Parse one line; raise ValueError if it is not exactly one well-formed point."""
    if "\n" in line:
        raise ValueError("a newline inside a line makes two points")
    meas, i = _unescape_until(line, 0, ", ")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        k, i = _unescape_until(line, i + 1, "=")
        if line[i] != "=":
            raise ValueError("tag without =")
        v, i = _unescape_until(line, i + 1, ", ")
        if k in tags:
            raise ValueError(f"duplicate tag {k}")
        tags[k] = v
    if i >= len(line) or line[i] != " ":
        raise ValueError("no fields")
    i += 1
    fields: dict[str, object] = {}
    while True:
        k, i = _unescape_until(line, i, "=")
        i += 1
        if i < len(line) and line[i] == '"':
            i += 1
            out = []
            while True:
                if i >= len(line):
                    raise ValueError("unterminated string")
                c = line[i]
                if c == "\\" and i + 1 < len(line) and line[i + 1] in '"\\':
                    out.append(line[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            val: object = "".join(out)
        else:
            j = i
            while i < len(line) and line[i] not in ", ":
                i += 1
            raw = line[j:i]
            if raw.endswith("i"):
                val = int(raw[:-1])
            elif raw in ("true", "false"):
                val = raw == "true"
            else:
                val = float(raw)
        if k in fields:
            raise ValueError(f"duplicate field {k}")
        fields[k] = val
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    if i >= len(line) or line[i] != " ":
        raise ValueError("no timestamp")
    ts = line[i + 1 :]
    if not ts.isdigit():
        raise ValueError(f"bad timestamp {ts!r}")
    return meas, tags, fields, int(ts)
