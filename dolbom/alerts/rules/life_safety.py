"""Life-safety events (DESIGN.md §5): ``button``, ``fall``, ``smoke``, ``gas``,
``sos_voice`` raise at once with high priority, every time.

Also when replayed (``hist``: a life-safety event is always actionable, §3) and in
away or hospital mode (nothing suppresses them). Repeats of the same event carry the
same ``event_key`` (device, boot, seq), by which the alert journal deduplicates.
"""

from __future__ import annotations

from dolbom.alerts.model import Priority
from dolbom.alerts.rules.actions import Raise
from dolbom.alerts.rules.base import LIFE_SAFETY_RULES
from dolbom.alerts.rules.observations import LifeSafetyObs


def on_event(obs: LifeSafetyObs) -> Raise:
    return Raise(
        LIFE_SAFETY_RULES[obs.type],
        Priority.HIGH,
        obs.at_ms,
        device=obs.device,
        detail={"device": obs.device, "hist": obs.hist},
        event_key=(obs.device, obs.boot, obs.seq),
        event_ts_ms=obs.event_ts_ms,
    )
