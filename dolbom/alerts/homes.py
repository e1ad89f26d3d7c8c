"""The registry as the rules need it: every home's configuration (devices, mode,
thresholds), the device → home map, the rule state saved at the last run and when each
device was last heard; re-read every 30 s (``RegistrySync``), and the outcomes workers
recorded since, taught to the homes' concerns."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, String, cast, extract, func, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import engine
from dolbom.alerts.devmap import DeviceMap
from dolbom.alerts.model import THRESHOLD_SETTINGS, Outcome, Rule, Thresholds, thresholds_from
from dolbom.alerts.pause import pause
from dolbom.alerts.states import RuleStates
from dolbom.registry.models import (
    Alert,
    Device,
    Home,
    HomeRuleState,
    RegistryChange,
    RegistryVersion,
    Resident,
    ResidentSetting,
    site_ids_in_cell,
)

log = logging.getLogger("dolbom.alerts")
DEV, HOME, SAVED = Device.__table__.c, Home.__table__.c, HomeRuleState.__table__.c
REFRESH_S = 30.0  # the registry is looked at this often
CHUNK = 500  # homes per query of a partial re-read (IN lists)
# More changed homes than this: read the whole registry once rather than in pieces.
FULL_READ_HOMES = 20_000


def _thresholds(overrides: Mapping[str, Any], wandering: bool) -> Thresholds:
    """Per-resident settings (registry ``resident_settings``) over the defaults."""
    return thresholds_from({k: v for k, v in overrides.items() if k in THRESHOLD_SETTINGS},
                           wandering, on_bad=lambda why: log.warning("ignoring %s", why))


def load_homes(s: Session, known: Mapping[str, engine.HomeConfig] | None = None,
               known_devices: DeviceMap | None = None, cell: str | None = None,
               heard: dict[str, tuple[int | None, ...]] | None = None,
               ) -> tuple[dict[str, engine.HomeConfig], DeviceMap]:
    """Every home's rule configuration (of the sites in ``cell``; None: every site), and
    device → home.

    Memory per home matters at 300,000 homes (DESIGN.md §7: ≤ 1 KB): equal thresholds
    share one object, repeated strings (kinds, power, site ids) are interned, and a
    configuration equal to the one in ``known`` (the last read) is that very object, so
    a re-read keeps one copy of each home's strings. The device map keeps no device ids
    of its own (``DeviceMap``: it finds them in the configurations); it reuses the table
    of ``known_devices`` (the last read's) if no home's devices changed. Plain column
    rows, not ORM objects: the service re-reads this every ``registry_refresh_s``, in a
    worker thread, while the alarm path runs in the same process.
    """
    homes = _read_homes(s, None, known or {}, {}, cell, heard)
    return homes, DeviceMap(homes.values(), previous=known_devices)


def update_homes(s: Session, ids: Collection[str], known: Mapping[str, engine.HomeConfig],
                 known_devices: DeviceMap, cell: str | None = None,
                 heard: dict[str, tuple[int | None, ...]] | None = None,
                 ) -> tuple[dict[str, engine.HomeConfig], DeviceMap]:
    """``known`` with the homes ``ids`` read again (the ones the registry says changed):
    a home gone from the registry (or from ``cell``) is dropped, a new one added at the
    end. The other
    homes keep their objects and their order, so the device map's table is reused
    when no device moved (``DeviceMap``'s ``previous``)."""
    shared = {cfg.thresholds: cfg.thresholds for cfg in known.values()}
    fresh: dict[str, engine.HomeConfig] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), CHUNK):
        fresh.update(_read_homes(s, ordered[i:i + CHUNK], known, shared, cell, heard))
    homes = dict(known)
    for home in ids:
        if home in fresh:
            homes[home] = fresh[home]
        else:
            homes.pop(home, None)
    return homes, DeviceMap(homes.values(), previous=known_devices)


def _read_homes(s: Session, only: list[str] | None, known: Mapping[str, engine.HomeConfig],
                shared: dict[Thresholds, Thresholds], cell: str | None = None,
                heard: dict[str, tuple[int | None, ...]] | None = None,
                ) -> dict[str, engine.HomeConfig]:
    """The configurations of the homes ``only`` (None: every home) of the sites in
    ``cell`` (None: every site); see ``load_homes``. ``heard``: also filled with when
    each home's devices were last heard (ms UTC, None: never; in the order of its
    configuration's ``ids``), from the same rows."""
    # Core rows, and the closed sets (power, mode) as the text they are stored as: at
    # 300,000 homes the ORM's rows and enum conversions took most of a restart.
    dq = (select(DEV.id, DEV.home_id, DEV.kind, type_coerce(DEV.power, String), DEV.hb_s,
                 *(() if heard is None else (_epoch_ms(s, DEV.last_seen_at),)))
          .where(DEV.revoked_at.is_(None), DEV.home_id.is_not(None)))
    rq = select(Resident.home_id, Resident.wandering)
    sq = (select(ResidentSetting.key, ResidentSetting.value, Resident.home_id)
          .join(Resident, Resident.id == ResidentSetting.resident_id))
    hq = select(HOME.id, HOME.site_id, type_coerce(HOME.mode, String))
    if cell is not None:  # another cell's homes are its alert services' (docs/scale.md)
        hq = hq.where(Home.site_id.in_(site_ids_in_cell(cell)))
    if only is not None:
        dq = dq.where(Device.home_id.in_(only))
        rq = rq.where(Resident.home_id.in_(only))
        sq = sq.where(Resident.home_id.in_(only))
        hq = hq.where(Home.id.in_(only))
    def rows(q: Any) -> Any:  # whole results at once: a fetch per row costs more
        return s.connection().execute(q).all()

    devices: dict[str, list[Any]] = {}  # home -> its rows (id, home, kind, power, hb_s…)
    for row in rows(dq):
        devices.setdefault(row[1], []).append(row)
    overrides: dict[str, dict[str, Any]] = {}
    wandering: dict[str, bool] = {}
    for home_id, flag in rows(rq):
        wandering[home_id] = wandering.get(home_id, False) or bool(flag)
    for key, value, home_id in rows(sq):
        overrides.setdefault(home_id, {})[key] = value
    homes: dict[str, engine.HomeConfig] = {}
    plain: dict[bool, Thresholds] = {}  # the defaults, for the homes without settings
    for row_home, site_id, mode in rows(hq):
        wanders = wandering.get(row_home, False)
        ov = overrides.get(row_home)
        if ov:
            t = _thresholds(ov, wanders)
            t = shared.setdefault(t, t)
        elif wanders in plain:
            t = plain[wanders]
        else:
            t = _thresholds({}, wanders)
            t = plain[wanders] = shared.setdefault(t, t)
        cols = list(zip(*devices.get(row_home, ()), strict=True)) or [()] * 6
        cfg = engine.HomeConfig.of(sys.intern(site_id), row_home, sys.intern(mode), t,
                                   cols[0], cols[2], cols[3], cols[4])
        if heard is not None:
            heard[row_home] = cols[5]
        old = known.get(row_home)
        if old == cfg:  # unchanged: keep the object (and its strings) the service holds
            cfg = old
        homes[cfg.home] = cfg
    return homes


def _saved(s: Session, homes: list[str] | None) -> dict[str, Any]:
    """The rule state saved for ``homes`` (None: every home): packed bytes, or the JSON
    form of older versions."""
    q = select(SAVED.home_id, SAVED.state, SAVED.packed)
    if homes is not None:
        q = q.where(SAVED.home_id.in_(homes))
    return {h: st if b is None else b for h, st, b in s.connection().execute(q).all()}


def _epoch_ms(s: Session, column: Any) -> ColumnElement[int]:
    """``column`` (a UTC timestamp) as ms since 1970, worked out by the database: 1.8
    million datetimes built and converted in Python took seconds of a restart."""
    if s.get_bind().dialect.name == "sqlite":  # naive UTC text (UtcDateTime)
        return cast(func.round((func.julianday(column) - 2440587.5) * 86_400_000.0),
                    BigInteger)
    return cast(func.round(extract("epoch", column) * 1000), BigInteger)


def registry_version(s: Session) -> int:
    """The registry's change number (``RegistryVersion``; 0 before any change)."""
    return s.scalar(select(RegistryVersion.n).where(RegistryVersion.id == 1)) or 0


def changed_homes(s: Session, since: int) -> list[str]:
    """Homes whose configuration changed after change number ``since``."""
    return list(s.scalars(select(RegistryChange.home_id).where(RegistryChange.n > since)))


class RegistrySync:
    """Keeps ``rules`` in step with the registry: ``load`` at start-up, ``refresh`` every
    ``REFRESH_S`` (and for a device it does not know), ``learn_outcomes`` after each.

    A refresh first reads the registry's change number (``registry_version``, raised by
    database triggers on what the rules read, migration 0007): unchanged, that one small
    query is all; changed, only the homes changed since are read again
    (``registry_changes``)."""

    def __init__(self, sessions: sessionmaker[Session], rules: RuleStates,
                 clock: Callable[[], float], cell: str | None = None) -> None:
        self.sessions, self.rules, self.cell = sessions, rules, cell
        # Outcomes resolved after this are taught to the homes' concerns (learn_outcomes).
        self._outcomes_since = datetime.fromtimestamp(clock(), UTC)
        self.version: int | None = None  # the change number of the homes adopted
        self._refreshing = asyncio.Lock()  # one refresh at a time (timer, unknown device)

    async def load(self) -> None:
        """Read the registry, the saved rule state and when devices were last heard."""
        def read() -> tuple[int, dict[str, engine.HomeConfig], DeviceMap, dict[str, Any],
                            dict[str, tuple[int | None, ...]]]:
            with self.sessions() as s:
                # read before the homes: a change committed in between is read again
                version = registry_version(s)
                heard: dict[str, tuple[int | None, ...]] = {}  # ingest's, also while down
                homes, device_home = load_homes(s, cell=self.cell, heard=heard)
                saved = _saved(s, None)
            return version, homes, device_home, saved, heard

        # Millions of long-lived objects are made here (300,000 homes): the cyclic
        # collector would walk them again and again while they are made (a third of a
        # restart at that size), and at every full collection after. Off while loading,
        # then frozen: later collections leave what was loaded alone.
        gc.disable()
        try:
            version, homes, device_home, saved, heard = await asyncio.to_thread(read)
            self.rules.adopt(homes, device_home, saved, heard)
        finally:
            gc.enable()
        gc.freeze()
        self.version = version

    async def refresh(self) -> None:
        """Re-read the homes changed in the registry (new devices, mode changes).

        A new home's saved state and its devices' last-seen times are read for that
        home only; homes already running keep their state, and unchanged homes their
        configuration object (one copy of its strings, and its states' tag stays shared).
        """
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        rules = self.rules
        old, old_devices, since = rules.homes, rules.device_home, self.version

        def read() -> tuple[int, tuple[dict[str, engine.HomeConfig], DeviceMap, dict[str, Any],
                                       dict[str, tuple[int | None, ...]], set[str]] | None]:
            with self.sessions() as s:
                version = registry_version(s)
                if version == since:
                    return version, None
                ids = None if since is None else changed_homes(s, since)
                read_heard: dict[str, tuple[int | None, ...]] = {}  # from the same rows
                if ids is None or len(ids) > FULL_READ_HOMES:
                    homes, device_home = load_homes(s, old, old_devices, self.cell,
                                                    read_heard)
                else:
                    homes, device_home = update_homes(s, ids, old, old_devices, self.cell,
                                                      read_heard)
                # compared here, not on the event loop: 300,000 homes take a while
                changed = {h for h in (homes if ids is None else ids)
                           if h in old and h in homes and old[h] is not homes[h]}
                new = [h for h in (homes if ids is None else ids)
                       if h in homes and h not in rules.states]
                saved: dict[str, Any] = {}
                for i in range(0, len(new), CHUNK):
                    saved.update(_saved(s, new[i:i + CHUNK]))
                heard = {h: read_heard[h] for h in new if h in read_heard}
            return version, (homes, device_home, saved, heard, changed)

        version, read_ = await asyncio.to_thread(read)
        if read_ is not None:
            rules.adopt(*read_)
        self.version = version

    async def learn_outcomes(self) -> int:
        """Outcomes that workers recorded since the last look (on the API or the command
        line) teach each home's concern (``engine.feedback``); returns how many. Outcomes
        recorded while the service was down are not looked for."""
        since = self._outcomes_since

        def read() -> list[tuple[str, str, str, datetime]]:
            with self.sessions() as s:
                return [(h, r, o, t) for h, r, o, t in s.execute(
                    select(Alert.home_id, Alert.rule, Alert.outcome, Alert.resolved_at)
                    .where(Alert.resolved_at > since, Alert.outcome.is_not(None),
                           Alert.home_id.is_not(None),
                           Alert.rule.in_([r.value for r in engine.FEEDBACK_RULES]))
                    .order_by(Alert.resolved_at)) if h and o and t]

        rows = await asyncio.to_thread(read)
        n = 0
        for home, rule, outcome, at in rows:
            self._outcomes_since = max(self._outcomes_since, at)
            if home not in self.rules.homes or outcome not in Outcome.__members__.values():
                continue
            self.rules.feedback(home, Rule(rule), Outcome(outcome))
            n += 1
        return n

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await pause(stopping, REFRESH_S)
            try:
                await self.refresh()
                await self.learn_outcomes()
            except Exception:
                log.exception("registry refresh failed")
