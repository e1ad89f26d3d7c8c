"""``dolbom alerts replay``: the real rules over a recorded stream, on its own clock.

    dolbom alerts replay --homes homes.json --messages messages.jsonl --out alerts.jsonl

The formats are fixed in DESIGN.md §5 ("Replay"): add fields, never rename. No server
is needed: each message goes through ``feed`` (as in the alerts service) into the
engine, the engine's timers fire at their deadlines in the recorded time, and every
action becomes what a person would have seen (``audience``). Homes are independent,
so one timer heap over all homes in deadline order, merged with the messages in
receive order, gives exactly the service's actions (the engine's actions do not
depend on when a tick runs; tested as a property).

Life-safety events go through the same dedup as the alert journal (``(dev, boot,
seq)``); one whose payload fails validation is still raised from its topic (the
device and the event type are in it), deduplicated by the payload's hash. A
message line that is not valid is counted and skipped; it never stops the replay.
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dolbom.alerts import engine, feed
from dolbom.alerts.audience import Audience
from dolbom.alerts.model import Priority, thresholds_from
from dolbom.alerts.rules.actions import Raise
from dolbom.alerts.rules.base import LIFE_SAFETY_RULES, MODES
from dolbom.alerts.rules.observations import LifeSafetyObs
from dolbom.protocol import LIFE_SAFETY, Kind, Topics

PROGRESS_EVERY = 100_000  # messages between progress callbacks


class ReplayError(ValueError):
    """The homes file cannot be used (one line saying what is wrong)."""


@dataclass(slots=True)
class ReplayStats:
    messages: int = 0
    bad_lines: int = 0  # not a JSON object with rx_ms, topic, payload
    unknown_devices: int = 0  # valid topic, but no home lists the device
    ignored: int = 0  # not contract v1 (topic), or a payload that fails validation
    out_of_order: int = 0  # rx_ms earlier than the line before: taken at that line's time
    alerts: int = 0  # lines written
    by_action: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Home:
    site: str
    home: str
    spec: dict[str, Any]
    modes: list[tuple[int, str]]  # (t_ms, mode), in time order
    cfg: engine.HomeConfig
    state: engine.HomeState | None = None


def _device(d: Any, home: str) -> engine.DeviceInfo:
    if not isinstance(d, dict):
        raise ReplayError(f"home {home}: a device is not an object")
    try:
        return engine.DeviceInfo(str(d["id"]), str(d["kind"]), str(d.get("power", "mains")),
                                 int(d.get("hb_s", 60)))
    except KeyError as e:
        raise ReplayError(f"home {home}: a device has no {e.args[0]!r}") from e
    except (TypeError, ValueError) as e:
        raise ReplayError(f"home {home}: {e}") from e


def load_homes(doc: Any) -> list[_Home]:
    """The homes of a ``homes.json`` document; ``ReplayError`` names the first problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("homes"), list):
        raise ReplayError('homes file: expected {"homes": [...]}')
    homes: list[_Home] = []
    seen: set[str] = set()
    for n, h in enumerate(doc["homes"]):
        if not isinstance(h, dict) or not h.get("site") or not h.get("home"):
            raise ReplayError(f"homes file: home #{n} needs a site and a home")
        site, home = str(h["site"]), str(h["home"])
        if home in seen:
            raise ReplayError(f"homes file: home {home} is listed twice")
        seen.add(home)
        overrides = dict(h.get("thresholds") or {})
        if h.get("timezone"):
            overrides["timezone"] = h["timezone"]
        flags = h.get("flags") or []
        try:
            th = thresholds_from(overrides, "wandering" in flags)
            devices = [_device(d, home) for d in h.get("devices") or []]
            modes = sorted((int(m["t_ms"]), str(m["mode"])) for m in h.get("modes") or [])
            for _, mode in modes:
                if mode not in MODES:
                    raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
            cfg = engine.HomeConfig(site, home, "normal", th, devices)
        except (KeyError, TypeError) as e:
            raise ReplayError(f"home {home}: a mode needs t_ms and mode ({e})") from e
        except ValueError as e:
            raise ReplayError(f"home {home}: {e}") from e
        homes.append(_Home(site, home, h, modes, cfg))
    return homes


class Replay:
    """The engine over many homes on a recorded clock. Feed ``message`` in receive
    order, then ``finish``; each returns the lines people would have seen."""

    def __init__(self, homes: list[_Home], topic_prefix: str = "care/v1") -> None:
        self.topics = Topics(topic_prefix)
        self.homes = {h.home: h for h in homes}
        self.by_device: dict[str, _Home] = {}
        for h in homes:
            for d in h.cfg.ids:
                if d in self.by_device:
                    raise ReplayError(f"device {d} is listed in homes "
                                      f"{self.by_device[d].home} and {h.home}")
                self.by_device[d] = h
        self.audience = Audience()
        self.stats = ReplayStats()
        self._heap: list[tuple[int, int, str]] = []  # (time, order, home): timers, modes
        self._due: dict[str, int] = {}
        self._journal: set[tuple[str, int, int] | tuple[str, str]] = set()
        self._out: list[dict[str, Any]] = []
        self._started = False

    # -- the clock --------------------------------------------------------------------
    def _start(self, t0: int) -> None:
        """Every home starts at the first message's time (a new home is not "inactive
        since 1970"); mode changes are queued at their times."""
        self._started = True
        for h in self.homes.values():
            mode = "normal"
            for t, m in h.modes:
                if t <= t0:
                    mode = m
                else:
                    heapq.heappush(self._heap, (t, 0, h.home))
            h.cfg = self._with_mode(h, mode)
            h.state = engine.initial_state(h.cfg, t0)
            self._schedule(h)

    @staticmethod
    def _with_mode(h: _Home, mode: str) -> engine.HomeConfig:
        if h.cfg.mode == mode:
            return h.cfg
        return engine.HomeConfig(h.site, h.home, mode, h.cfg.thresholds, h.cfg.devices)

    def _schedule(self, h: _Home) -> None:
        assert h.state is not None
        t = engine.next_deadline(h.cfg, h.state)
        if t is None:
            self._due.pop(h.home, None)
            return
        if self._due.get(h.home) != t:
            self._due[h.home] = t
            heapq.heappush(self._heap, (t, 1, h.home))

    def _run_until(self, t: int, *, inclusive: bool) -> None:
        """Fire timers and mode changes due before ``t`` (or at ``t``, if inclusive)."""
        heap = self._heap
        while heap and (heap[0][0] < t or (inclusive and heap[0][0] == t)):
            at, order, home = heapq.heappop(heap)
            h = self.homes[home]
            assert h.state is not None
            if order == 0:  # a mode change at ``at``
                mode = next((m for tm, m in reversed(h.modes) if tm <= at), "normal")
                h.cfg = self._with_mode(h, mode)
            elif self._due.get(home) != at:
                continue  # superseded
            else:
                del self._due[home]
            h.state, acts = engine.tick(h.cfg, h.state, at)
            self._emit(h.site, h.home, acts)
            self._schedule(h)

    def _emit(self, site: str, home: str | None, acts: list[engine.Action]) -> None:
        if acts:
            self._out.extend(self.audience.lines(site, home, acts))

    # -- messages -----------------------------------------------------------------------
    def message(self, rx_ms: int, topic_text: str, payload: bytes) -> None:
        self.stats.messages += 1
        if not self._started:
            self._start(rx_ms)
        self._run_until(rx_ms, inclusive=False)
        topic = self.topics.parse(topic_text)
        if topic is None or topic.kind in (Kind.ACK, Kind.CMD):
            self.stats.ignored += 1
            return
        h = self.by_device.get(topic.device)
        if topic.kind is Kind.EVENT and topic.name in LIFE_SAFETY:
            self._life_safety(h, topic.site, topic.device, topic.name, payload, rx_ms,
                              topic_ok=feed.life_safety(topic, payload, rx_ms))
        if h is None:
            self.stats.unknown_devices += 1
            return
        assert h.state is not None
        acts: list[engine.Action] = []

        def observe(obs: engine.Observation) -> None:
            assert h.state is not None
            h.state, more = engine.observe(h.cfg, h.state, obs)
            acts.extend(more)

        if not feed.stream(topic, payload, rx_ms, observe):
            self.stats.ignored += 1
        self._emit(h.site, h.home, acts)
        self._schedule(h)

    def _life_safety(self, h: _Home | None, site: str, device: str, kind: str, payload: bytes,
                     rx_ms: int, topic_ok: LifeSafetyObs | None) -> None:
        """The alarm path: journal once per event, raise, never lose one."""
        if topic_ok is not None:
            key: tuple[str, int, int] | tuple[str, str] = (device, topic_ok.boot, topic_ok.seq)
            obs = topic_ok
            reasons = None
        else:
            # A broken payload on a life-safety topic still means someone may need help.
            key = (device, hashlib.sha256(payload).hexdigest())
            obs = LifeSafetyObs(device, kind, 0, 0, rx_ms, rx_ms, False)
            reasons = [f"{kind} event with a payload that failed validation"]
        if key in self._journal:
            return
        self._journal.add(key)
        if h is not None:
            assert h.state is not None
            h.state, acts = engine.observe(h.cfg, h.state, obs)
            if reasons is not None:
                acts = [_with_reasons(a, reasons) for a in acts]
            self._emit(h.site, h.home, acts)
            self._schedule(h)
            return
        why = [f"{kind} at device {device}, not assigned to a home"] + (reasons or [])
        self._emit(site, None, [Raise(LIFE_SAFETY_RULES[kind], Priority.HIGH, rx_ms,
                                      device=device, detail={"reasons": why})])

    def take(self) -> list[dict[str, Any]]:
        """The lines so far, in time order (and taken: the next call starts afresh)."""
        out, self._out = self._out, []
        out.sort(key=lambda line: line["t_ms"])  # stable: same-time lines keep their order
        for line in out:
            self.stats.alerts += 1
            self.stats.by_action[line["action"]] = self.stats.by_action.get(
                line["action"], 0) + 1
        return out

    def finish(self, end_ms: int | None) -> None:
        """Fire what is due up to the end of the recording (its last message)."""
        if end_ms is not None and self._started:
            self._run_until(end_ms, inclusive=True)


def _with_reasons(a: engine.Action, reasons: list[str]) -> engine.Action:
    if isinstance(a, Raise):
        return Raise(a.rule, a.priority, a.at_ms, a.device, {**a.detail, "reasons": reasons},
                     None, a.event_ts_ms)
    return a


def _messages(lines: Iterable[bytes], stats: ReplayStats) -> Iterator[tuple[int, str, bytes]]:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            m = orjson.loads(raw)
            rx, topic, payload = int(m["rx_ms"]), m["topic"], m["payload"]
            if not isinstance(topic, str):
                raise TypeError("topic")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            stats.bad_lines += 1
            continue
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) \
            else orjson.dumps(payload)
        yield rx, topic, data


def replay(homes_doc: Any, lines: Iterable[bytes], write: Callable[[dict[str, Any]], None],
           progress: Callable[[int], None] | None = None,
           topic_prefix: str = "care/v1") -> ReplayStats:
    """Replay ``lines`` (messages.jsonl, in receive order) over the homes of
    ``homes_doc``; each line a person would have seen goes to ``write``, in time order
    (held until the end: a verdict confirmed late carries the time it matured)."""
    r = Replay(load_homes(homes_doc), topic_prefix)
    last: int | None = None
    for rx_ms, topic, payload in _messages(lines, r.stats):
        rx = rx_ms
        if last is not None and rx < last:
            r.stats.out_of_order += 1  # processed at the time reached so far
            rx = last
        last = rx
        r.message(rx, topic, payload)
        if progress is not None and r.stats.messages % PROGRESS_EVERY == 0:
            progress(r.stats.messages)
    r.finish(last)
    for line in r.take():
        write(line)
    if progress is not None:
        progress(r.stats.messages)
    return r.stats


def replay_files(homes_path: Path, messages_path: Path, out_path: Path,
                 progress: Callable[[int], None] | None = None,
                 topic_prefix: str = "care/v1") -> ReplayStats:
    """``replay`` over files; ``ReplayError`` if the homes file is not usable."""
    try:
        doc = orjson.loads(homes_path.read_bytes())
    except OSError as e:
        raise ReplayError(f"cannot read {homes_path}: {e.strerror}") from e
    except orjson.JSONDecodeError as e:
        raise ReplayError(f"{homes_path} is not JSON: {e}") from e
    try:
        src = messages_path.open("rb")
    except OSError as e:
        raise ReplayError(f"cannot read {messages_path}: {e.strerror}") from e
    with src, out_path.open("wb") as out:
        def write(line: dict[str, Any]) -> None:
            out.write(orjson.dumps(line) + b"\n")

        return replay(doc, src, write, progress, topic_prefix)


def print_progress(n: int) -> None:
    print(f"\rreplayed {n:,} messages", end="", file=sys.stderr, flush=True)
