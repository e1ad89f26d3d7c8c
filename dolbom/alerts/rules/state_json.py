"""A home's rule state as saved by the service so that timers survive a restart.

``state_to_bytes`` / ``state_from_bytes``: the packed state itself behind a 7-byte
header (version, layout, tag length): what the service saves, ~0.45 KB and 0.2 µs for
six devices. The layout (``LAYOUT``: the structs, rule bits, modes and baselines the
bytes depend on) is pinned by a test: a change to it needs a new ``PACKED_VERSION``
and a reader of the old one (version 1 is read: ``baseline.from_v1``), or saved states
start afresh.

``state_to_json`` / ``state_from_json``: by name (rule bits by name, so bit order can
change), ~1.4 KB and 60 µs; what the service saved before the packed form, still read
(``state_from_saved``), and a readable form for tests and debugging."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import baseline
from dolbom.alerts.rules.base import BIT, MODES, REC
from dolbom.alerts.rules.state import HOME, HOME_FIELDS, TAIL, HomeState, Work

STATE_VERSION = 2  # 2: with the home's baselines (version 1 is read, baselines fresh)
_RULE_MASKS = frozenset({"raised", "pending", "quiet"})
# The order of the JSON form (STATE_VERSION 1), whatever the order of HOME.
_JSON_FIELDS = (
    "mode", "lost", "battery_low", "hot", "cold", "activity_ms", "inact_tier", "inact_at",
    "inact_exact", "door_ms", "power_ms", "bed_out_ms", "heat_raised_ms", "cold_raised_ms",
    "raised", "pending", "quiet", "timed_ms", "due_ms",
)


def state_to_json(state: HomeState) -> dict[str, Any]:
    """A JSON-ready dict of the state (rule bits by name, so bit order can change)."""
    w = Work.thaw(state)
    d: dict[str, Any] = {
        "v": STATE_VERSION,
        "tag": state.tag.hex(),
        "devs": [list(r) for r in REC.iter_unpack(state.devs)],
        "learn": {name: (list(v) if isinstance(v, bytearray | list) else v)
                  for name in baseline.FIELDS for v in (getattr(w.learn, name),)},
    }
    for name in _JSON_FIELDS:
        value = getattr(w, name)
        if name == "mode":
            value = MODES[value]
        elif name in _RULE_MASKS:
            value = sorted(r.value for r, b in BIT.items() if value & b)
        d[name] = value
    return d


def state_from_json(d: dict[str, Any]) -> HomeState:
    """The state ``state_to_json`` wrote; ``ValueError`` if ``d`` is not one."""
    try:
        if d["v"] not in (1, STATE_VERSION):
            raise ValueError(f"state version {d['v']!r} is not {STATE_VERSION}")
        tag = bytes.fromhex(d["tag"])
        recs = d["devs"]
        if len(tag) % 4 or len(tag) // 4 != len(recs) + 1:
            raise ValueError("tag does not match the device records")
        values: dict[str, Any] = {}
        for name in HOME_FIELDS:
            v = d[name]
            if name == "mode":
                v = MODES.index(v)
            elif name in _RULE_MASKS:
                v = sum(BIT[Rule(r)] for r in set(v))
            elif name == "inact_exact":
                if not isinstance(v, bool):
                    raise ValueError("inact_exact is not a boolean")
            elif not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name} is not an integer")
            values[name] = v
        devs = b"".join(REC.pack(*r) for r in recs)
        learned = _learned_from_json(d["learn"]) if d["v"] >= 2 else baseline.Learned.fresh()
        return HomeState(tag, devs + learned.pack() + HOME.pack(*values.values()))
    except (KeyError, TypeError, struct.error) as e:
        raise ValueError(f"not a home rule state: {e!r}") from e


def _learned_from_json(d: dict[str, Any]) -> baseline.Learned:
    learned = baseline.Learned.fresh()
    for name in baseline.FIELDS:
        if name not in d:
            continue  # a state saved before this baseline existed: it starts afresh
        v = d[name]
        if name == "p":
            v = bytearray(v)
            if len(v) != baseline.BINS:
                raise ValueError("learn.p does not have 48 bins")
        elif name in baseline.LISTS:
            v = [int(x) for x in v]
            if len(v) != len(getattr(learned, name)):
                raise ValueError(f"learn.{name} has the wrong length")
        elif not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"learn.{name} is not an integer")
        elif name == "days":
            v = min(v, 255)  # saved wider before PACKED_VERSION 2 (only < 7 matters)
        elif name == "night_day":
            v %= 256  # likewise (compared with today's, modulo 256)
        setattr(learned, name, v)
    learned.pack()  # every value in range (struct.error otherwise)
    return learned


PACKED_VERSION = 2  # 2: the baselines' days and night_day in a byte, seen_bits at their end


def _layout(learn_format: str, learn_fields: tuple[str, ...]) -> int:
    return zlib.crc32(repr((
        REC.format, learn_format, learn_fields, HOME.format, HOME_FIELDS, MODES,
        sorted((r.value, b) for r, b in BIT.items()))).encode())


# What the packed bytes depend on, as a number saved with them (see the module's doc).
LAYOUT = _layout(baseline.LEARN.format, baseline.FIELDS)
# Version 1: the same but for the baselines (``baseline.from_v1`` converts them).
LAYOUT_V1 = _layout(baseline.LEARN_V1.format, baseline.FIELDS_V1)
_HEAD = struct.Struct("<BIH")  # PACKED_VERSION, LAYOUT, len(tag)


def state_to_bytes(state: HomeState) -> bytes:
    """The state as saved: a header, the tag, the packed data."""
    return b"".join((_HEAD.pack(PACKED_VERSION, LAYOUT, len(state.tag)), state.tag,
                     state.data))


def state_from_bytes(b: bytes) -> HomeState:
    """The state ``state_to_bytes`` wrote; ``ValueError`` if ``b`` is not one (or was
    written for another layout)."""
    try:
        version, layout, n = _HEAD.unpack_from(b)
    except struct.error as e:
        raise ValueError(f"not a packed home rule state: {e!r}") from e
    start = _HEAD.size
    tag, data = bytes(b[start:start + n]), bytes(b[start + n:])
    if version == 1 and layout == LAYOUT_V1 and len(data) >= HOME.size + baseline.LEARN_V1.size:
        end = len(data) - HOME.size  # the baselines lie just before the home's scalars
        start = end - baseline.LEARN_V1.size
        data = data[:start] + baseline.from_v1(data[start:end]) + data[end:]
    elif version != PACKED_VERSION or layout != LAYOUT:
        raise ValueError(f"packed state version {version}/{layout:#x} is not "
                         f"{PACKED_VERSION}/{LAYOUT:#x}")
    if len(tag) != n or n % 4 or n == 0 or len(data) != (n // 4 - 1) * REC.size + TAIL:
        raise ValueError("tag does not match the device records")
    return HomeState(tag, data)


def state_from_saved(saved: bytes | dict[str, Any]) -> HomeState:
    """A saved state, packed (``state_to_bytes``) or JSON (``state_to_json``, what the
    service saved before); ``ValueError`` if it is neither."""
    if isinstance(saved, bytes | bytearray | memoryview):
        return state_from_bytes(bytes(saved))
    return state_from_json(saved)
