"""The board: one tile per resident, its state from the home's unresolved alerts and
devices (``views.tile``), worst first, with the home's last activity from the InfluxDB
of the home's cell (docs/scale.md): the board's homes are grouped by their cell's
InfluxDB and each is asked once for all its homes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.api.access import Scope
from dolbom.api.console import views
from dolbom.api.console.data import Groups, chunks, headline, last_activity_in_cells
from dolbom.api.console.i18n import ago, translator
from dolbom.registry.models import Alert, Device, Home, Resident


@dataclass(frozen=True, slots=True)
class TileView:
    id: int
    name: str
    home: str
    state: str
    state_key: str
    headline: str | None
    open_alerts: int
    last_activity: str


def alert_facts(a: Alert) -> views.AlertFacts:
    return views.AlertFacts(a.id, a.rule, a.klass, a.priority, a.status, a.raised_at)


def unresolved_alerts_by_home(session: Session, scope: Scope, homes: Sequence[str]
                              ) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = defaultdict(list)
    for chunk in chunks(sorted(homes), 500):
        for a in session.scalars(select(Alert).where(
                Alert.home_id.in_(chunk), Alert.status != views.RESOLVED,
                scope.alert_filter())):
            out[a.home_id or ""].append(a)
    return out


def devices_by_home(session: Session, homes: Sequence[str]) -> dict[str, list[Device]]:
    out: dict[str, list[Device]] = defaultdict(list)
    for chunk in chunks(sorted(homes), 500):
        for d in session.scalars(select(Device).where(Device.home_id.in_(chunk))
                                 .order_by(Device.id)):
            out[d.home_id or ""].append(d)
    return out


def device_facts(d: Device) -> views.DeviceFacts:
    return views.DeviceFacts(d.id, d.kind, d.last_state, d.revoked_at is not None)


def activity_text(when: datetime | None, down: bool, now: datetime, locale: str) -> str:
    """``down``: the home's InfluxDB did not answer, so "never" would be a guess."""
    if down:
        return "—"
    if when is None:
        return translator(locale)("time.never")
    return ago((now - when).total_seconds(), locale)


def board(session: Session, scope: Scope, residents: Sequence[Resident],
          readers: Callable[[Sequence[str]], Groups], locale: str, now: datetime
          ) -> list[TileView]:
    """``readers`` groups home ids by the reader of their cell's InfluxDB
    (``CellReaders.by_reader``)."""
    homes = {h.id: h for h in session.scalars(
        select(Home).where(Home.id.in_(sorted({r.home_id for r in residents}))))}
    alerts = unresolved_alerts_by_home(session, scope, list(homes))
    devices = devices_by_home(session, list(homes))
    activity, down = last_activity_in_cells(readers(list(homes)), now)
    tiles = []
    for r in residents:
        home = homes[r.home_id]
        tl = views.tile([alert_facts(a) for a in alerts.get(r.home_id, [])],
                        [device_facts(d) for d in devices.get(r.home_id, [])], home.mode.value)
        worst = next((a for a in alerts.get(r.home_id, []) if tl.worst and a.id == tl.worst.id),
                     None)
        tiles.append(TileView(
            r.id, r.name, r.home_id, tl.state.value, tl.state_key,
            headline(worst, locale) if worst is not None else None, tl.open_alerts,
            activity_text(activity.get(r.home_id), r.home_id in down, now, locale)))
    tiles.sort(key=lambda x: (views.tile_order(views.TileState(x.state)), x.name, x.id))
    return tiles


def state_counts(tiles: Sequence[TileView]) -> list[tuple[str, int]]:
    return [(s.value, n) for s in views.TileState
            if (n := sum(1 for x in tiles if x.state == s.value))]
