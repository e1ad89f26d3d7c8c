"""One received message → the rules engine's observations (DESIGN.md §3, §5).

The alerts service's stream path and ``dolbom alerts replay`` both turn a message
into observations here, so a replay runs the rules exactly as the service does.

    stream(topic, payload, now_ms, emit)   everything but life-safety events
    life_safety(topic, payload, now_ms)    a life-safety event (the alarm path)

``now_ms`` is the receive time: it stamps live observations. Replayed backlog
(``"hist": true``) keeps the time it happened (``effective_ts``), so it cannot pass
for news. Nothing here raises on bad input: a message that fails validation is
ingest's to dead-letter, and only says (through ``emit``) nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable

from dolbom.alerts.model import ACTIVITY_EVENTS
from dolbom.alerts.rules.observations import (
    ActivityObs,
    DeviceEventObs,
    LifeSafetyObs,
    Observation,
    ReadingObs,
    Seen,
    StatusObs,
)
from dolbom.protocol import (
    LIFE_SAFETY,
    DecodeError,
    Event,
    Kind,
    Status,
    Telemetry,
    Topic,
    decode,
    effective_ts,
)

Emit = Callable[[Observation], object]  # what it returns is not used


def stream(topic: Topic, payload: bytes, now: int, emit: Emit) -> bool:
    """Emit the observations of one uplink message that is not a life-safety event
    (for one of those, only that its device is alive). False: it said nothing (a
    downlink, or a payload that fails validation)."""
    if topic.kind in (Kind.ACK, Kind.CMD):
        return False
    dev = topic.device
    if topic.kind is Kind.EVENT and topic.name in LIFE_SAFETY:
        # The alarm path journals it; on the stream it only says the device is alive.
        emit(Seen(dev, now))
        return True
    try:
        m = decode(topic, payload)
    except DecodeError:
        return False
    # Typed observations count as the device being heard; a bare Seen is only for
    # messages that carry nothing else. A Last Will ("lost") is not a sign of life.
    if isinstance(m, Status):
        ob = m.outbox
        emit(StatusObs(dev, m.state, m.hb, m.next, now,
                       None if ob is None else (ob.evicted, ob.werr)))
    elif isinstance(m, Event):
        at = effective_ts(m.env, m.env.ts, now) if m.env.hist else now
        if m.type in ACTIVITY_EVENTS:
            val = m.val if isinstance(m.val, str) else None
            emit(ActivityObs(dev, m.type, val, at, m.env.hist))
        else:
            emit(DeviceEventObs(dev, m.type, at))
    elif isinstance(m, Telemetry):
        observed = False
        for sample in m.samples:
            if sample.readings:
                at = effective_ts(m.env, sample.ts, now) if m.env.hist else now
                emit(ReadingObs(dev, sample.readings, at, m.env.hist))
                observed = True
        if not observed or m.env.hist:
            emit(Seen(dev, now))
    return True


def life_safety(topic: Topic, payload: bytes, now: int) -> LifeSafetyObs | None:
    """The observation of a life-safety event, or None if the message is not one that
    validates (the alarm path decides what a broken one means)."""
    if topic.kind is not Kind.EVENT or topic.name not in LIFE_SAFETY:
        return None
    try:
        m = decode(topic, payload)
    except DecodeError:
        return None
    if not isinstance(m, Event) or m.type not in LIFE_SAFETY:
        return None
    return LifeSafetyObs(topic.device, m.type, m.env.boot, m.env.seq, m.env.ts, now,
                         m.env.hist)
