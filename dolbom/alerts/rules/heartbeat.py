"""The engine's path for its commonest message, a heartbeat (30,000 a second), that
reads and writes the packed state without unpacking it."""

from __future__ import annotations

from dolbom.alerts.rules.base import I64, NEVER, REC, HomeConfig
from dolbom.alerts.rules.observations import ReadingObs, Seen
from dolbom.alerts.rules.state import HOT, HomeState


def heartbeat(cfg: HomeConfig, state: HomeState, obs: Seen | ReadingObs) -> HomeState | None:
    """``observe`` of the commonest message, a heartbeat, without unpacking the state:
    a device that is not lost, in a home whose configuration is unchanged, with nothing
    due before it and no verdict waiting for a sign of life. It does exactly what the
    general path would (the engine's property tests run both). None: take that path.
    A live reading no rule reads (``engine.observe``: ``RULE_READINGS``) is a heartbeat
    too: the device's only news is that it is alive."""
    tag, data = cfg.tag, state.data
    if state.tag != tag:  # usually the same object (see engine._fit)
        return None
    mode, pending, lost, timed, due = HOT.unpack_from(data, len(data) - HOT.size)
    at = obs.at_ms
    p = cfg.profile
    if pending or mode != p.mode_index or 0 < due < at:
        return None
    # cfg.index(device), inline (a call less, 30,000 times a second)
    dev, packed = obs.device, cfg.packed
    at_id = packed.find(f"\n{dev}\n")
    if at_id < 0 or "\n" in dev:
        return state  # not this home's device
    i = packed.count("\n", 0, at_id)
    recs = p.records.unpack_from(data)  # REC fields of every device, in a row
    k = i * 4
    if at <= recs[k]:
        return state
    if lost >> i & 1:
        return None
    next_s = recs[k + 1]
    # lost_deadline() of a device that is not lost, inline: this runs 30,000 times a second
    lost_at = at + (p.lost_after_ms(next_s) if next_s and p.battery >> i & 1 else p.lost_ms[i])
    deadlines = list(recs[3::4])
    deadlines[i] = lost_at
    first = min(deadlines)  # the next device to be lost: _due() without re-unpacking
    due = timed if first == NEVER else min(first, timed) if timed else first
    o = i * REC.size
    return HomeState(tag, b"".join((data[:o], REC.pack(at, next_s, recs[k + 2], lost_at),
                                    data[o + REC.size:-I64.size], I64.pack(due))))


def heard_all(cfg: HomeConfig, state: HomeState, times: list[int | None]) -> HomeState | None:
    """``heartbeat`` of every device of the home at once: ``times[i]`` is when device ``i``
    was last heard (None: not known), as a restart reads them from the registry. The
    same state as a ``Seen`` per device in turn, in any order, when each of them would
    take the fast path (nothing due before the latest of them, before or after, and no
    device lost that is heard again); None otherwise: take them one by one."""
    tag, data = cfg.tag, state.data
    if state.tag != tag or len(times) != len(cfg.lost_ms):
        return None
    mode, pending, lost, timed, due = HOT.unpack_from(data, len(data) - HOT.size)
    p = cfg.profile
    newest = max((t for t in times if t is not None), default=None)
    if newest is None:
        return state
    if pending or mode != p.mode_index or 0 < due < newest:
        return None
    recs = list(p.records.unpack_from(data))
    changed = False
    for i, at in enumerate(times):
        k = i * 4
        if at is None or at <= recs[k]:
            continue
        if lost >> i & 1:
            return None
        next_s = recs[k + 1]
        recs[k] = at
        recs[k + 3] = at + (p.lost_after_ms(next_s) if next_s and p.battery >> i & 1
                            else p.lost_ms[i])
        changed = True
    if not changed:
        return state
    first = min(recs[3::4])
    due = timed if first == NEVER else min(first, timed) if timed else first
    if 0 < due < newest:
        # in some order one of them would find a device's loss due first: every
        # deadline on the way is its value before or after, so checking both suffices
        return None
    n = p.records.size
    return HomeState(tag, b"".join((p.records.pack(*recs), data[n:-I64.size], I64.pack(due))))
