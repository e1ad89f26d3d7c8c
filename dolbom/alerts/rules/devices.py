"""Technical rules about the devices themselves (DESIGN.md §5, "silence is not safety").

* **Lost**: no message for ``lost_factor`` × the promised interval (a battery node's
  announced ``next``, else the registry's ``hb_s``) raises DEVICE_LOST (GATEWAY_LOST
  for a gateway), low priority, or medium when the home then has no working activity
  sensor (the care worker must know that nobody is watching). Heard again → not lost;
  no device lost any more → Clear.
* **Behind a lost gateway**: a device whose home's gateway went quiet with it (not heard
  since the device's last message) is judged after the gateway: when the gateway is lost,
  the device is unknown, not lost (its verdicts pause, no alert of its own), so a cut
  uplink is one GATEWAY_LOST, not a DEVICE_LOST per device; the gateway's alert is raised
  again at medium when the home is left with no working primary sensor. A device silent
  while its gateway is heard is lost itself. Backlog replayed after the cut is history.
  When the gateway is heard again, each device still unknown behind it is given its own
  interval from that moment (``children_back``): one that died during the cut is then
  judged lost on its own, one that comes back through the gateway is simply heard.
* **Nobody can see the resident**: while the home has no working primary sensor, its
  lost alert (``DEVICE_LOST``, or ``GATEWAY_LOST`` when the home's link went with them)
  is told again, medium, each time the inactivity rule's first tier comes due (12 h of
  awake time without a sign of life, so at most about a day apart): "not seen for N h,
  call or visit" (``unwatched``). A resident who falls while the home is blind is then
  checked on within a day, not when someone gets round to the battery. An alert a
  person acknowledged is not pushed again (the alert store tells only open ones).
* **Battery low**: ``battery_pct`` below ``battery_low_pct`` or a ``battery_low``
  event; cleared at ``battery_low_pct`` + 5 (hysteresis) on every device.
* **Tamper**: raises every time; a person resolves it.
* **Outbox fault**: a node reports (in its ``status``) that its flash outbox of
  life-safety events dropped one when full, or failed to write: raised when a total
  grows (they are running totals on the node), medium when an event was dropped (an
  alarm may have been lost: the care worker should check on the resident), low for
  write errors alone. A person resolves it.
"""

from __future__ import annotations

from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.rules.actions import Action, Clear, Raise
from dolbom.alerts.rules.base import (
    BIT,
    HOUR_MS,
    NEVER,
    REC,
    HomeConfig,
    interval_s,
    lost_deadline,
)
from dolbom.alerts.rules.baseline import OB_SLOTS
from dolbom.alerts.rules.state import Work

BATTERY_CLEAR_MARGIN_PCT = 5.0
OB_MAX = 65_535  # baseline.Learned keeps the outbox totals in 16 bits
NEXT_S_MAX = 2**32 - 1  # REC stores next_s as uint32 (the contract caps it at 7 days)


def due(cfg: HomeConfig, w: Work) -> tuple[int, int] | None:
    """(time, device index) of the next device to become lost, if any."""
    return next_lost(cfg, w.devs)


def next_lost(cfg: HomeConfig, records: bytes | bytearray) -> tuple[int, int] | None:
    """``due`` over packed records. Devices lost at the same ms go in the order of their
    ids, whatever their positions in ``ids``."""
    deadlines = cfg.profile.records.unpack(records)[3::4]
    t = min(deadlines, default=NEVER)
    if t == NEVER:
        return None
    i = deadlines.index(t)
    if deadlines.count(t) > 1:
        i = min((k for k, d in enumerate(deadlines) if d == t),
                key=cfg.ids.__getitem__)
    return t, i


def _rule(cfg: HomeConfig, i: int) -> Rule:
    return Rule.GATEWAY_LOST if cfg.gateways >> i & 1 else Rule.DEVICE_LOST


def _gateway_silent(cfg: HomeConfig, w: Work, seen: int) -> int:
    """The home's gateways not heard since ``seen`` (when a device was last heard)."""
    gws = cfg.gateways
    return sum(1 << g for g in range(gws.bit_length()) if gws >> g & 1 and w.seen(g) <= seen)


def fire(cfg: HomeConfig, w: Work, i: int, at: int, acts: list[Action]) -> None:
    """Device ``i`` has been silent too long at ``at``."""
    b = 1 << i
    d = cfg.device(i)
    seen, next_s, temp = w.rec(i)
    silent_gws = 0 if cfg.gateways & b else _gateway_silent(cfg, w, seen)
    if silent_gws & ~w.lost:
        # The home's gateway went quiet with it: the home's link is the likelier cause.
        # Its own verdict comes first (one gateway_lost, not one device_lost a device);
        # this one is judged again just after it.
        g = (silent_gws & ~w.lost).bit_length() - 1
        again = REC.unpack_from(w.devs, g * REC.size)[3] + 1
        REC.pack_into(w.devs, i * REC.size, seen, next_s, temp, again)
        return
    w.lost |= b
    w.set_heard(cfg, i, seen, next_s)  # disarms its lost deadline
    if silent_gws:
        # Behind a lost gateway: unknown, not lost (no alert of its own); the verdicts
        # that depend on it pause. If the home now has no working primary sensor, the
        # gateway's alert becomes the care worker's: nobody can see the resident.
        if cfg.primary & b and not cfg.primary & ~w.lost:  # (the last one, once)
            g = silent_gws.bit_length() - 1
            gd = cfg.device(g)
            acts.append(Raise(Rule.GATEWAY_LOST, Priority.MEDIUM, at, device=gd.device,
                              detail={"device": gd.device, "kind": gd.kind,
                                      "last_seen_ms": w.seen(g), "children_unknown": True}))
            w.raised |= BIT[Rule.GATEWAY_LOST]
        return
    rule = _rule(cfg, i)
    # Medium when the home's primary sensors (its motion sensors, or else its door and
    # bed sensors) are all lost: nobody can see the resident any more, so the care
    # worker is told, not only the operators (DESIGN.md §5, technical "low → medium").
    priority = Priority.LOW if cfg.primary & ~w.lost else Priority.MEDIUM
    acts.append(Raise(rule, priority, at, device=d.device, detail={
        "device": d.device, "kind": d.kind, "last_seen_ms": seen,
        "promised_s": interval_s(d, next_s)}))
    w.raised |= BIT[rule]


def announce(cfg: HomeConfig, w: Work, i: int, next_s: int | None) -> None:
    """A status message: remember the interval it announced (0: none)."""
    w.set_heard(cfg, i, w.seen(i), min(max(next_s or 0, 0), NEXT_S_MAX))


def heard(cfg: HomeConfig, w: Work, i: int, at: int, acts: list[Action]) -> None:
    """Device ``i`` sent something at ``at``: it is alive."""
    seen, next_s, _ = w.rec(i)
    if at <= seen:
        return
    b = 1 << i
    was_lost = w.lost & b
    w.lost &= ~b
    w.set_heard(cfg, i, at, next_s)
    if not was_lost:
        return
    if cfg.gateways & b:
        children_back(cfg, w, seen, at)
    rule = _rule(cfg, i)
    same_rule = cfg.gateways if rule is Rule.GATEWAY_LOST else ~cfg.gateways
    if w.raised & BIT[rule] and not w.lost & same_rule:
        acts.append(Clear(rule, at, "device heard again"))
        w.raised &= ~BIT[rule]


def children_back(cfg: HomeConfig, w: Work, gateway_seen: int, at: int) -> None:
    """A lost gateway, last heard at ``gateway_seen``, is heard again at ``at``. The devices
    that went quiet with it (heard at or after its last word, so judged after it and left
    unknown, with no alert) are given their own lost deadline from ``at``: each stays
    unknown (its verdicts paused) until it is heard, or is judged lost on its own when its
    interval passes with nothing from it. A device lost before the cut keeps its alert."""
    unknown = w.lost & ~cfg.gateways
    for j in range(unknown.bit_length()):
        if not unknown >> j & 1:
            continue
        seen, next_s, temp, deadline = REC.unpack_from(w.devs, j * REC.size)
        if seen >= gateway_seen and deadline == NEVER:
            REC.pack_into(w.devs, j * REC.size, seen, next_s, temp,
                          pending_deadline(cfg, j, at, next_s))


def pending_deadline(cfg: HomeConfig, j: int, since: int, next_s: int) -> int:
    """The lost deadline of device ``j``, still unknown, counted from ``since``."""
    return lost_deadline(cfg, j, since, next_s, 0)


def battery_low(cfg: HomeConfig, w: Work, i: int, pct: float | None, at: int,
                acts: list[Action]) -> None:
    """A low reading (``pct``) or a ``battery_low`` event (``pct`` None) from device ``i``."""
    b = 1 << i
    if w.battery_low & b:
        return
    device = cfg.ids[i]
    acts.append(Raise(Rule.BATTERY_LOW, Priority.LOW, at, device=device,
                      detail={"device": device, "battery_pct": pct}))
    w.battery_low |= b
    w.raised |= BIT[Rule.BATTERY_LOW]


def on_battery(cfg: HomeConfig, w: Work, i: int, pct: float, at: int,
               acts: list[Action]) -> None:
    """A live ``battery_pct`` reading."""
    low = cfg.thresholds.battery_low_pct
    if pct < low:
        battery_low(cfg, w, i, pct, at, acts)
        return
    b = 1 << i
    if pct < low + BATTERY_CLEAR_MARGIN_PCT or not w.battery_low & b:
        return
    w.battery_low &= ~b
    if not w.battery_low and w.raised & BIT[Rule.BATTERY_LOW]:
        acts.append(Clear(Rule.BATTERY_LOW, at, "battery recharged or replaced"))
        w.raised &= ~BIT[Rule.BATTERY_LOW]


def tamper(cfg: HomeConfig, i: int, at: int) -> Raise:
    device = cfg.ids[i]
    return Raise(Rule.TAMPER, Priority.LOW, at, device=device, detail={"device": device})


def on_outbox(cfg: HomeConfig, w: Work, i: int, totals: tuple[int, int], at: int,
              acts: list[Action]) -> None:
    """A node's outbox totals (evicted, failed writes) from its status."""
    L = w.learn
    evicted, werr = totals
    slot = next((k for k in range(OB_SLOTS) if L.ob_dev[k] == i + 1), -1)
    if slot < 0:  # a node not seen before: a free slot, else the first one
        slot = next((k for k in range(OB_SLOTS) if not L.ob_dev[k]), 0)
        L.ob_dev[slot], L.ob_evicted[slot], L.ob_werr[slot] = i + 1, 0, 0
    # Kept saturating: past OB_MAX only a change below it is seen (rare enough).
    new_evicted = max(0, min(evicted, OB_MAX) - L.ob_evicted[slot])
    new_werr = max(0, min(werr, OB_MAX) - L.ob_werr[slot])
    L.ob_evicted[slot] = min(evicted, OB_MAX)
    L.ob_werr[slot] = min(werr, OB_MAX)
    if not new_evicted and not new_werr:
        return
    device = cfg.ids[i]
    why = []
    if new_evicted:
        why.append(f"{new_evicted} life-safety event(s) dropped from the node's full outbox: "
                   "an alarm may not have reached us")
    if new_werr:
        why.append(f"{new_werr} failed flash write(s) on the node")
    acts.append(Raise(Rule.OUTBOX_FAULT, Priority.MEDIUM if new_evicted else Priority.LOW,
                      at, device=device, detail={
                          "device": device, "evicted": evicted, "werr": werr,
                          "reasons": why}))


UNWATCHED_STEP_MS = 12 * HOUR_MS  # the "tier" of a reminder grows by one per step


def blind(cfg: HomeConfig, w: Work) -> bool:
    """The home has primary sensors and every one of them is lost (or unknown)."""
    return bool(cfg.primary) and not cfg.primary & ~w.lost


def unwatched(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> bool:
    """The home is blind at ``at``: tell its lost alert again with how long nobody has seen
    the resident. False (nothing told) within ``UNWATCHED_STEP_MS`` of the last sign of
    anyone (the alert raised when the home went blind said it already, or the door, the
    bed or a plug shows someone is about)."""
    prim = cfg.primary
    last = max((j for j in range(prim.bit_length()) if prim >> j & 1), key=w.seen)
    # the last sign of anyone: a primary sensor's last word, a movement, or a door, the
    # bed or a plug switched on (``blind.on_life``)
    L = w.learn
    since = max(w.seen(last), L.motion_ms, L.life_ms)
    if at - since < UNWATCHED_STEP_MS:
        return False
    silent_gws = _gateway_silent(cfg, w, w.seen(last)) & w.lost
    if silent_gws:
        rule, d = Rule.GATEWAY_LOST, cfg.device(silent_gws.bit_length() - 1)
    else:
        rule, d = Rule.DEVICE_LOST, cfg.device(last)
    hours = (at - since) // HOUR_MS
    acts.append(Raise(rule, Priority.MEDIUM, at, device=d.device, detail={
        "device": d.device, "kind": d.kind, "unseen_since_ms": since, "unwatched_h": hours,
        # a higher tier is news: the alert store tells it again
        "tier": 2 + (at - since) // UNWATCHED_STEP_MS,
        "reasons": [f"no working activity sensor: nobody has seen the resident for "
                    f"{hours} h; call or visit"],
        "reasons_ko": [f"활동 감지기 작동 안 함: {hours}시간 동안 거주자를 확인할 수 없음; "
                       "전화 또는 방문 필요"]}))
    w.raised |= BIT[rule]
    return True
