"""Devices in no home (a care facility's corridor smoke detector, a gateway that serves
several flats, a device installed before its home is set up): silence is not safety for
them either (DESIGN.md §5).

The rules engine judges a home's devices; these have no home, so this watch does it for
them, in the rules process: each is lost after ``lost_factor`` × the heartbeat interval
the registry promises for it (``hb_s``) with nothing heard from it, which raises one low
technical alert for the device's site, with no home, one open alert per device
(``device_lost``, or ``gateway_lost`` for a gateway); heard again, the alert is cleared.
A Last Will (``lost``) is not a sign of life. A device never heard is not judged: it may
be provisioned and not installed yet (a stock of detectors registered in one go must not
become an alert each). After a start the registry's last-seen time (written by ingest)
counts; alerts left open by an earlier run are found again, so a device heard again still
clears its alert.

Few devices have no home, so they are simply held in a dict and checked every
``check_s``; the registry is read again every ``refresh_s`` (a device given a home leaves
this watch, and an alert it left open is cleared: its home's rules judge it now).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.model import EscalationTable, Priority, Rule, Status, Thresholds
from dolbom.alerts.pause import pause
from dolbom.alerts.rules.actions import Action, Clear, Raise, Suppressed
from dolbom.alerts.rules.base import GATEWAY_KIND
from dolbom.alerts.rules.observations import Observation, StatusObs
from dolbom.registry.gateways import GatewayChild
from dolbom.registry.models import Alert, Device, site_ids_in_cell

log = logging.getLogger("dolbom.alerts")
RULES = (Rule.DEVICE_LOST, Rule.GATEWAY_LOST)
LOST_FACTOR = Thresholds().lost_factor  # as the rules judge a home's devices


@dataclass(slots=True)
class Watched:
    site: str
    kind: str
    lost_ms: int  # silent this long: lost
    seen_ms: int | None  # last heard; None: never (not installed yet: not judged)
    raised: bool = False  # its alert is open

    @property
    def rule(self) -> Rule:
        return Rule.GATEWAY_LOST if self.kind == GATEWAY_KIND else Rule.DEVICE_LOST


@dataclass(frozen=True, slots=True)
class Change:
    """An alert to raise (``raise_``) or clear for one device; ``home``: a home's
    ``device_lost`` held back while its gateway was quiet, raised after all."""

    device: str
    site: str
    rule: Rule
    raise_: bool
    at_ms: int
    detail: dict[str, object]
    home: str | None = None


@dataclass(slots=True)
class Held:
    """A flat's ``device_lost`` held back: its gateway went quiet with it."""

    home: str
    gateway: str
    action: Raise
    back_ms: int | None = None  # when the gateway was heard again


Row = tuple[str, str, str, int, datetime | None]  # id, site, kind, hb_s, last_seen_at


class HomelessWatch:
    def __init__(self, lost_factor: float = LOST_FACTOR) -> None:
        self.lost_factor = lost_factor
        self.devices: dict[str, Watched] = {}
        self.back: set[str] = set()  # raised, then heard: to clear
        # device of a home → its gateway with no home (the registry's map): a gateway of
        # several flats, which no home's rules know
        self.children: dict[str, str] = {}
        self.held: dict[str, Held] = {}  # device → its device_lost held back

    def vet(self, home: str, action: Action) -> Action:
        """A home's ``device_lost`` at low priority for a device behind a gateway with no
        home that has not been heard since the device's last message: they went quiet
        together, the link is the likelier cause, and the gateway's own ``gateway_lost``
        (this watch's) says it, once, rather than one ``device_lost`` per flat. Recorded
        as suppressed. At medium (the home has no working sensor left) it still goes to
        the care worker: nobody can see the resident."""
        if isinstance(action, Clear) and action.rule is Rule.DEVICE_LOST:
            # every device of the home heard again: none held there is lost any more
            for dev in [d for d, h in self.held.items() if h.home == home]:
                del self.held[dev]
            return action
        if (not isinstance(action, Raise) or action.rule is not Rule.DEVICE_LOST
                or action.priority is not Priority.LOW or action.device is None):
            return action
        gw = self.children.get(action.device)
        w = None if gw is None else self.devices.get(gw)
        last = action.detail.get("last_seen_ms")
        if gw is None or w is None or not isinstance(last, int) or (w.seen_ms or 0) > last:
            return action
        self.held[action.device] = Held(home, gw, action)
        return Suppressed(Rule.DEVICE_LOST, action.at_ms,
                          f"{action.device}: its gateway {gw} (no home) went quiet with it")

    def __contains__(self, device: object) -> bool:
        return device in self.devices

    def adopt(self, rows: list[Row], open_alerts: set[str], now_ms: int,
              children: dict[str, str] | None = None) -> list[Change]:
        """The registry's devices with no home now; ``open_alerts``: devices whose lost
        alert is open; ``children``: device → its gateway, for the gateways among them. A
        device that left (a home given, revoked) with its alert open gets it cleared."""
        old, self.devices = self.devices, {}
        self.children = dict(children or {})
        changes: list[Change] = []
        for dev, site, kind, hb_s, seen_at in rows:
            was = old.get(dev)
            seen: int | None = None  # never heard: provisioned, maybe not installed yet
            if was is not None:
                seen = was.seen_ms
            elif seen_at is not None:
                aware = seen_at if seen_at.tzinfo else seen_at.replace(tzinfo=UTC)
                seen = max(int(aware.timestamp() * 1000), 0)
            self.devices[dev] = Watched(site, kind, round(self.lost_factor * hb_s * 1000),
                                        seen, was.raised if was else dev in open_alerts)
        for dev, w in old.items():
            if w.raised and dev not in self.devices:
                changes.append(Change(dev, w.site, w.rule, False, now_ms, {}))
        return changes

    def observe(self, obs: Observation) -> None:
        """One observation of a device with no home (``feed.stream``'s): alive unless it
        is a Last Will."""
        if isinstance(obs, StatusObs) and obs.state == "lost":
            return
        w = self.devices.get(obs.device)
        if w is None or (w.seen_ms is not None and obs.at_ms <= w.seen_ms):
            return
        w.seen_ms = obs.at_ms
        if w.raised:
            self.back.add(obs.device)
        for h in self.held.values():  # its children held back: judged from now on
            if h.gateway == obs.device and h.back_ms is None:
                h.back_ms = obs.at_ms

    def written(self, changes: list[Change]) -> None:
        """``changes`` (of ``check``) are in the database: the held ones among them are
        let go."""
        for c in changes:
            if c.home is not None:
                self.held.pop(c.device, None)

    def check(self, now_ms: int) -> list[Change]:
        """The alerts to raise (silent too long) and to clear (heard again)."""
        changes: list[Change] = []
        for dev in sorted(self.back):
            w = self.devices.get(dev)
            if w is not None and w.raised:
                w.raised = False
                changes.append(Change(dev, w.site, w.rule, False, w.seen_ms or now_ms, {}))
        self.back.clear()
        # a flat's device still silent one of its own lost intervals after its gateway
        # came back died during the cut: its device_lost after all
        for dev, h in list(self.held.items()):
            gw = self.devices.get(h.gateway)
            if gw is None:  # the gateway has a home now, or is gone: nothing to judge after
                del self.held[dev]
                continue
            promised = h.action.detail.get("promised_s")
            interval = (round(self.lost_factor * promised * 1000)
                        if isinstance(promised, int | float) else None)
            if h.back_ms is None or interval is None or now_ms - h.back_ms < interval:
                continue
            # (held until written: ``written``)
            changes.append(Change(dev, gw.site, Rule.DEVICE_LOST, True,
                                  h.back_ms + interval,
                                  {**h.action.detail, "after_gateway": h.gateway}, h.home))
        for dev, w in self.devices.items():
            if not w.raised and w.seen_ms is not None and now_ms - w.seen_ms >= w.lost_ms:
                w.raised = True
                changes.append(Change(dev, w.site, w.rule, True, w.seen_ms + w.lost_ms, {
                    "device": dev, "kind": w.kind, "last_seen_ms": w.seen_ms,
                    "promised_s": w.lost_ms / 1000 / self.lost_factor, "no_home": True}))
        return changes


class HomelessDevices:
    """``HomelessWatch`` in the service: its registry reads and its alert writes."""

    def __init__(self, sessions: sessionmaker[Session], gate: WriteGate,
                 table: EscalationTable, clock: Callable[[], float], cell: str | None,
                 lost_factor: float = LOST_FACTOR) -> None:
        self.sessions, self.gate, self.table, self.clock = sessions, gate, table, clock
        self.cell = cell
        self.watch = HomelessWatch(lost_factor)

    def _read(self) -> tuple[list[Row], set[str], dict[str, str]]:
        with self.sessions() as s:
            q = (select(Device.id, Device.site_id, Device.kind, Device.hb_s,
                        Device.last_seen_at)
                 .where(Device.home_id.is_(None), Device.revoked_at.is_(None)))
            if self.cell is not None:
                q = q.where(Device.site_id.in_(site_ids_in_cell(self.cell)))
            rows = [(d, site, kind, int(hb), seen) for d, site, kind, hb, seen in s.execute(q)]
            gateways = [d for d, _, kind, _, _ in rows if kind == GATEWAY_KIND]
            children: dict[str, str] = {}
            if gateways:
                children = {d: g for d, g in s.execute(
                    select(GatewayChild.device_id, GatewayChild.gateway_id)
                    .where(GatewayChild.gateway_id.in_(gateways)))}
            open_ = set(s.scalars(select(Alert.device_id).where(
                Alert.home_id.is_(None), Alert.rule.in_([r.value for r in RULES]),
                Alert.status != Status.RESOLVED.value, Alert.device_id.is_not(None))))
        return rows, {d for d in open_ if d is not None}, children

    def _write(self, changes: list[Change]) -> None:
        with self.sessions.begin() as s:
            for c in changes:
                at = datetime.fromtimestamp(c.at_ms / 1000, UTC)
                if c.raise_ and c.home is not None:
                    lc.raise_alert(s, site=c.site, home=c.home, rule=c.rule,
                                   priority=Priority.LOW, at=at, table=self.table,
                                   device=c.device, detail=dict(c.detail))
                elif c.raise_:
                    lc.raise_alert(s, site=c.site, home=None, rule=c.rule,
                                   priority=Priority.LOW, at=at, table=self.table,
                                   device=c.device, detail=dict(c.detail), subject=c.device)
                else:
                    lc.auto_resolve(s, c.site, None, c.rule, at, "device heard again",
                                    subject=c.device)

    async def refresh(self) -> None:
        rows, open_alerts, children = await asyncio.to_thread(self._read)
        changes = self.watch.adopt(rows, open_alerts, int(self.clock() * 1000), children)
        if changes:
            await self.gate.run(partial(self._write, changes))

    async def run(self, stopping: asyncio.Event, check_s: float = 5.0,
                  refresh_s: float = 30.0) -> None:
        """Read the registry, then check every ``check_s`` and read it again every
        ``refresh_s``, until ``stopping``. A database error is logged and tried again."""
        next_read = 0.0
        while not stopping.is_set():
            try:
                now = self.clock()
                if now >= next_read:
                    await self.refresh()
                    next_read = now + refresh_s
                changes = self.watch.check(int(self.clock() * 1000))
                if changes:
                    try:
                        await self.gate.run(partial(self._write, changes))
                        self.watch.written(changes)
                    except Exception:
                        for c in changes:  # judged again at the next check
                            w = self.watch.devices.get(c.device)
                            if w is not None:
                                w.raised = not c.raise_
                                if not c.raise_:
                                    self.watch.back.add(c.device)
                        raise
            except Exception:
                log.exception("devices with no home: could not check; trying again")
            await pause(stopping, check_s)
