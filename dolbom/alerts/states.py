"""Every home's rule configuration and state in memory: adopted from the registry, fed
observations from the stream, ticked by the timer heap. The engine (pure) decides; the
actions go to ``queue`` (the database is never touched here), and the homes whose state
changed are remembered (``dirty``) until they are saved (``persist``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dolbom.alerts import engine
from dolbom.alerts.alarm.journal import Route
from dolbom.alerts.devmap import DeviceMap
from dolbom.alerts.model import Outcome, Rule
from dolbom.alerts.timers import TimerHeap

log = logging.getLogger("dolbom.alerts")
Queue = Callable[[str, list[engine.Action]], None]
# A registry read that brings more new homes than this applies their last-seen times
# later (``_settle``), so the service takes messages sooner after a restart.
LATE_HEARD_HOMES = 20_000
SETTLE_PER_PASS = 10_000  # homes brought up to date per timer pass (~60 ms)


class RuleStates:
    def __init__(self, clock: Callable[[], float], queue: Queue) -> None:
        self.clock = clock
        self.queue = queue
        self.homes: dict[str, engine.HomeConfig] = {}
        self.device_home = DeviceMap()  # device → home: the stream path, life-safety routing
        self.states: dict[str, engine.HomeState] = {}
        self.dirty: set[str] = set()
        self.timers = TimerHeap()
        # New homes whose last-seen times (ingest's, from while the rules were down) are
        # not applied yet: home -> (the configuration they were read with, the times in
        # the order of its ids). Every path that reads or changes a home's state applies
        # them first (_settle); the timer passes work through the rest.
        self.unsettled: dict[str, tuple[engine.HomeConfig, Sequence[int | None]]] = {}
        # While the stream from the broker is down the rules hear nothing, and neither
        # does anyone: verdicts on silence are held, and no device is judged lost for it
        # (TESTPLAN F-03). True from a drop of either session until the stream is back.
        self.deaf = False

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def adopt(self, homes: dict[str, engine.HomeConfig], device_home: DeviceMap,
              saved: Mapping[str, Any], heard: Mapping[str, Sequence[int | None]],
              changed: set[str] | None = None) -> None:
        """Take a registry read: start new homes, re-arm homes whose configuration changed
        (``changed``: those homes, worked out by the caller off the event loop).
        ``heard``: when each new home's devices were last heard (in the order of its
        configuration's ``ids``; None: not known), as ingest recorded it."""
        now = self.now_ms()
        old = self.homes
        self.homes, self.device_home = homes, device_home
        # A home gone from the registry, or from this service's cell (its site moved to
        # another cell), lets its state go: if it comes back, its saved state is read
        # again (the other cell's, newer than what this process last held).
        for home in [h for h in self.states if h not in homes]:
            del self.states[home]
            self.dirty.discard(home)
            self.unsettled.pop(home, None)
        if changed is None:
            changed = {h for h, cfg in homes.items() if h in self.states and old.get(h) != cfg}
        for home in changed:  # a mode, threshold or device change
            if home in self.states:
                self._settle(home)
                self.schedule(home)
        late = sum(h not in self.states for h in homes) > LATE_HEARD_HOMES
        for home, cfg in homes.items():
            if home in self.states:
                continue
            state = None
            if home in saved:
                try:
                    state = engine.state_from_saved(saved[home])
                except Exception:
                    log.exception("saved rule state of home %s unreadable; starting afresh", home)
            if state is None:
                state = engine.initial_state(cfg, now)
            self.states[home] = state
            self.dirty.add(home)  # a new home's clocks start now: save them
            times = heard.get(home, ())
            if times and late:
                # Armed at the saved state's deadline, which is never later than the
                # settled one: its timer settles the home before judging it.
                self.unsettled[home] = (cfg, times)
            elif times:
                self._heard(home, times, now)
            self.schedule(home)

    def _heard(self, home: str, times: Sequence[int | None], now: int) -> None:
        # Only what is newer than the saved state counts; timers that matured before a
        # device's time fire as they would have.
        times = [at if at is not None and at <= now else None for at in times]
        state = self.states[home]
        fresh, actions = engine.heard(self.homes[home], state, times)
        if fresh is not state:
            self.states[home] = fresh
            self.dirty.add(home)
        if actions:
            self.queue(home, actions)

    def _settle(self, home: str) -> None:
        """Apply the home's last-seen times from the registry, if they wait (a restart)."""
        waiting = self.unsettled.pop(home, None)
        if waiting is None:
            return
        read_with, times = waiting
        cfg = self.homes[home]
        if cfg.packed != read_with.packed:  # its devices changed since: by device id
            at = dict(zip(read_with.ids, times, strict=True))
            times = [at.get(dev) for dev in cfg.ids]
        self._heard(home, times, self.now_ms())

    def settle_some(self, n: int | None = None) -> int:
        """Apply the waiting last-seen times of up to ``n`` homes (None:
        ``SETTLE_PER_PASS``); returns how many."""
        n = SETTLE_PER_PASS if n is None else n
        done = 0
        while self.unsettled and done < n:
            home = next(iter(self.unsettled))
            self._settle(home)
            self.schedule(home)
            done += 1
        return done

    def schedule(self, home: str) -> None:
        """Arm the home's timer at its next deadline (``TimerHeap.arm``)."""
        self.timers.arm(home, engine.next_deadline(self.homes[home], self.states[home]))

    def apply(self, home: str, state: engine.HomeState, actions: list[engine.Action]) -> None:
        if state is not self.states[home]:
            self.states[home] = state
            self.dirty.add(home)
            self.schedule(home)
        self.queue(home, actions)

    def observe(self, home: str, obs: engine.Observation) -> list[engine.Action]:
        if self.unsettled:
            self._settle(home)
        cfg = self.homes[home]
        state, actions = engine.observe(cfg, self.states[home], obs)
        self.apply(home, state, actions)
        return actions

    def feedback(self, home: str, rule: Rule, outcome: Outcome) -> None:
        """A worker's recorded outcome for one of these homes (``engine.feedback``)."""
        self._settle(home)
        self.apply(home, engine.feedback(self.homes[home], self.states[home], rule, outcome),
                   [])

    def run_timers(self, budget: int | None = None) -> int:
        """Tick homes whose deadline has come, at most ``budget`` heap entries (None: all);
        returns how many entries were taken. Many homes share a deadline (all started
        together): a budget keeps the event loop, and so the alarm path, responsive."""
        if self.deaf:
            return 0  # nothing was heard: no verdict on silence (see broker.Broker)
        if self.unsettled:
            self.settle_some()
        now = self.now_ms()
        n = taken = 0
        while (budget is None or taken < budget) and (
                entry := self.timers.pop_due(now)) is not None:
            taken += 1
            home = entry[1]
            if home not in self.homes or not self.timers.take(entry):
                continue  # superseded by an earlier schedule
            if self.unsettled:
                self._settle(home)
            real = engine.next_deadline(self.homes[home], self.states[home])
            if real is not None and real > now:
                self.schedule(home)  # the deadline moved later since: re-arm
                continue
            state, actions = engine.tick(self.homes[home], self.states[home], now)
            self.states[home] = state
            self.dirty.add(home)
            self.schedule(home)
            self.queue(home, actions)
            n += 1
        return n if budget is None else taken

    def heard_again(self) -> None:
        """The stream is back after a drop: what could not be heard meanwhile counts for
        no device's loss; their lost deadlines count again from now (engine.unheard)."""
        while self.unsettled:
            self.settle_some()
        now = self.now_ms()
        for home, cfg in self.homes.items():
            state = self.states.get(home)
            if state is None:
                continue
            fresh = engine.unheard(cfg, state, now)
            if fresh is not state:
                self.states[home] = fresh
                self.dirty.add(home)
                self.schedule(home)
        self.deaf = False

    def route(self, device: str) -> Route | None:
        """(site, home) of a device, for the life-safety path; None if no home has it."""
        cfg = self.device_home.config(device)  # one of self.homes: adopted together
        return None if cfg is None else (cfg.site, cfg.home)
