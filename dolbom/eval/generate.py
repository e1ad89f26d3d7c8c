"""Writing a population to the replay files: ``homes.json``, ``messages.jsonl``,
``truth.json`` (formats in DESIGN.md §5 "Replay" and ``truth.py``).

Homes are generated in chunks; each chunk's messages are merged in receive order
in memory, and chunks are merged from temporary files, so memory stays bounded
however large the population is.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from dolbom.eval import truth as tr
from dolbom.eval.population import DAY_MS, HomeOutput, generate_home

HOMES_FILE, MESSAGES_FILE, TRUTH_FILE, ALERTS_FILE = (
    "homes.json", "messages.jsonl", "truth.json", "alerts.jsonl")
_RX_AT = len(b'{"rx_ms":')


def rx_of(line: bytes) -> int:
    """The ``rx_ms`` of a message line written here (it is always the first key)."""
    return int(line[_RX_AT: line.index(b",", _RX_AT)])


@dataclass(frozen=True, slots=True)
class Chunk:
    homes: list[dict[str, Any]]
    truth: tr.Truth
    messages: int


def write_chunk(directory: Path, seed: int, indices: Iterable[int], days: int,
                start_ms: int,
                each_home: Callable[[HomeOutput], None] | None = None) -> Chunk:
    """Generate homes ``indices`` and write the three files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    outs = []
    for i in indices:
        h = generate_home(seed, i, days, start_ms)
        if each_home is not None:
            each_home(h)
        h.messages = []  # only the encoded lines are kept from here on
        outs.append(h)
    n = 0
    with (directory / MESSAGES_FILE).open("wb") as f:
        for _, line in heapq.merge(*(h.lines for h in outs), key=lambda x: x[0]):
            f.write(line)
            f.write(b"\n")
            n += 1
    homes = [h.spec for h in outs]
    (directory / HOMES_FILE).write_bytes(orjson.dumps({"homes": homes}, option=orjson.OPT_INDENT_2))
    truth = tr.Truth(seed, start_ms, start_ms + days * DAY_MS, len(outs),
                     tuple(i for h in outs for i in h.truth),
                     frozenset(h.spec["home"] for h in outs if h.wandering),
                     {h.spec["home"]: h.habits for h in outs})
    tr.write(directory / TRUTH_FILE, truth)
    return Chunk(homes, truth, n)


def _lines(f: IO[bytes]) -> Iterator[bytes]:
    yield from f


def write_population(directory: Path, seed: int, homes: int, days: int, start_ms: int,
                     chunk: int = 25, progress: Callable[[int], None] | None = None) -> int:
    """All ``homes`` into one set of files; returns the number of messages."""
    directory.mkdir(parents=True, exist_ok=True)
    all_homes: list[dict[str, Any]] = []
    truths: list[tr.Truth] = []
    with tempfile.TemporaryDirectory(dir=directory, prefix=".chunks-") as tmp:
        parts: list[Path] = []
        for k, lo in enumerate(range(0, homes, chunk)):
            part = Path(tmp) / f"{k:05d}"
            c = write_chunk(part, seed, range(lo, min(homes, lo + chunk)), days, start_ms)
            all_homes += c.homes
            truths.append(c.truth)
            parts.append(part / MESSAGES_FILE)
            for name in (HOMES_FILE, TRUTH_FILE):
                os.unlink(part / name)
            if progress is not None:
                progress(min(homes, lo + chunk))
        files = [p.open("rb") for p in parts]
        n = 0
        try:
            with (directory / MESSAGES_FILE).open("wb") as out:
                for line in heapq.merge(*(_lines(f) for f in files), key=rx_of):
                    out.write(line)
                    n += 1
        finally:
            for f in files:
                f.close()
    (directory / HOMES_FILE).write_bytes(
        orjson.dumps({"homes": all_homes}, option=orjson.OPT_INDENT_2))
    tr.write(directory / TRUTH_FILE, tr.merge(truths))
    return n
