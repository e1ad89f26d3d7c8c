"""atheris harness for the payload decoder and the topic parser (TESTPLAN I-08).

    .venv/bin/python tests/fuzz/fuzz_decode.py -max_total_time=60 [CORPUS_DIR ...]

The first byte picks the topic; the second says whether the rest is the raw payload or
the recipe of a JSON object built from the contract's field names and fuzzed values
(orjson is native code, so libFuzzer gets no coverage signal to learn JSON from raw
bytes). Any exception other than DecodeError is a crash: libFuzzer prints it, writes the
input to ``crash-<sha1>`` and exits non-zero.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import atheris  # type: ignore[import-untyped,unused-ignore]

with atheris.instrument_imports():
    from dolbom.protocol import DecodeError, Kind, Topic, Topics, decode

import orjson

TOPICS = [
    Topic(Kind.EVENT, "s1", "d1", "button"),
    Topic(Kind.EVENT, "s1", "d1", "fall"),
    Topic(Kind.EVENT, "s1", "d1", "door"),
    Topic(Kind.EVENT, "s1", "d1", "bed"),
    Topic(Kind.EVENT, "s1", "d1", "motion"),
    Topic(Kind.TELEMETRY, "s1", "d1"),
    Topic(Kind.STATUS, "s1", "d1"),
    Topic(Kind.GATEWAY_STATUS, "s1", "g1"),
    Topic(Kind.ACK, "s1", "d1"),
    Topic(Kind.CMD, "s1", "d1", "ping"),
]
_TOPICS = Topics()
KEYS = ["v", "boot", "seq", "ts", "tq", "hist", "val", "readings", "batch", "state", "fw",
        "kind", "hb", "next", "heart_rate_bpm", "temperature_c", "battery_pct", "extra"]
VALID = {"v": 1, "boot": 3, "seq": 9, "ts": 1_763_700_000_123, "tq": 2}


def _value(fdp: Any, depth: int = 0) -> Any:
    pick = fdp.ConsumeIntInRange(0, 9 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return fdp.ConsumeBool()
    if pick == 2:
        return fdp.ConsumeInt(8)
    if pick == 3:
        return fdp.ConsumeIntInRange(-5, 5)
    if pick == 4:
        return fdp.ConsumeRegularFloat()
    if pick == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    if pick == 6:
        return fdp.PickValueInList(["open", "closed", "in", "out", "ready", "lost", "1.2.0"])
    if pick == 7:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.PickValueInList(KEYS): _value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 4))}


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    topic = fdp.PickValueInList(TOPICS)
    if fdp.ConsumeBool():
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        obj: dict[str, Any] = dict(VALID) if fdp.ConsumeBool() else {}
        for _ in range(fdp.ConsumeIntInRange(0, 8)):
            obj[fdp.PickValueInList(KEYS)] = _value(fdp)
        payload = orjson.dumps(obj)
    with contextlib.suppress(DecodeError):
        decode(topic, payload)
    _TOPICS.parse(payload.decode("utf-8", "replace"))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
