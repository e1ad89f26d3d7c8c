"""Is a dependency down long enough to tell the operators? (DESIGN.md §5, technical)

A broker or InfluxDB that stops answering for ``down_after_s`` raises one
``service_unreachable`` alert per site; it clears itself when the service answers
again. Short blips (a broker restart, a slow write) raise nothing: every false
alarm costs somebody's attention. Pure bookkeeping over an injected time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DependencyWatch:
    down_after_s: float
    _since: dict[str, float] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def failed(self, name: str, now: float) -> bool:
        """A failed attempt at ``now``; True exactly once, when it is time to raise."""
        since = self._since.setdefault(name, now)
        if name not in self._reported and now - since >= self.down_after_s:
            self._reported.add(name)
            return True
        return False

    def ok(self, name: str) -> bool:
        """The dependency answered; True if an alert was raised for it (clear it now)."""
        self._since.pop(name, None)
        if name in self._reported:
            self._reported.discard(name)
            return True
        return False

    def unreport(self, name: str) -> None:
        """Raising the alert failed: say True again at the next failure."""
        self._reported.discard(name)

    def down(self) -> dict[str, float]:
        """Dependencies failing now, with the time of their first failure."""
        return dict(self._since)
