"""What people would see of the rules' actions (DESIGN.md §5 "Goes to", "Lifecycle").

A pure mirror of what the alert store does with ``Raise`` / ``Clear`` / ``Watch``
(``lifecycle.raise_alert``, ``auto_resolve``, ``recipients``), without a database:
``dolbom alerts replay`` writes its lines from it, and the care-outcome evaluation
counts them.

* one open alert per (site, home, rule): the first ``Raise`` opens it and tells its
  people (``raise``); a repeat that is worse (a higher priority, a higher inactivity
  tier or heat level) or a new life-safety event tells them again (``notify``); any
  other repeat only updates the open alert (``update``);
* a ``Clear`` resolves an open welfare or technical alert (``resolve``); life-safety
  alerts are resolved only by a person, which a replay has not got, so they stay open
  and every later event of the rule notifies;
* a ``Watch`` goes to the console's daily watch list (``watch``), never a push.

Roles by priority (``recipients``, tier 1): high → the site's responders and the
home's care workers; medium → the care workers; low → the operators. A life-safety
event from a device with no home goes to the site's supervisors, responders and
operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dolbom.alerts.model import RULE_CLASS, AlertClass, Priority, Rule
from dolbom.alerts.rules.base import Action, Clear, Raise, Suppressed, Watch

_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
ROLES: dict[Priority, tuple[str, ...]] = {
    Priority.HIGH: ("responder", "care_worker"),
    Priority.MEDIUM: ("care_worker",),
    Priority.LOW: ("operator",),
}
UNROUTED_ROLES = ("supervisor", "responder", "operator")
WATCH_LIST = "watch_list"


def roles(priority: Priority, home: str | None) -> list[str]:
    """Who is told first about an alert of ``priority`` (a home's or, None, a site's)."""
    if home is None and priority is Priority.HIGH:
        return list(UNROUTED_ROLES)
    return list(ROLES[priority])


def reasons(rule: Rule, detail: Mapping[str, Any]) -> list[str]:
    """The alert's reasons in plain words (the rules put their own in ``reasons``)."""
    given = detail.get("reasons")
    if isinstance(given, list | tuple) and given:
        return [str(r) for r in given]
    if rule is Rule.INACTIVITY:
        return [f"no activity for {detail.get('silent_h')} h of awake time "
                f"(tier {detail.get('tier')})"]
    if RULE_CLASS[rule] is AlertClass.LIFE_SAFETY:
        why = f"{rule.value} event"
        return [why + (" (replayed backlog)" if detail.get("hist") else "")]
    words = ", ".join(f"{k} {v}" for k, v in sorted(detail.items())
                      if isinstance(v, int | float | str) and not k.endswith("_ms"))
    return [f"{rule.value.replace('_', ' ')}" + (f": {words}" if words else "")]


@dataclass(slots=True)
class _Open:
    priority: Priority
    level: int  # inactivity tier, heat/cold level: a higher one is news


class Audience:
    """The open alerts of a replay, and the line each action becomes."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str | None, Rule, str | None], _Open] = {}

    def lines(self, site: str, home: str | None, actions: list[Action]
              ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in actions:
            line = self.line(site, home, a)
            if line is not None:
                out.append(line)
        return out

    def line(self, site: str, home: str | None, a: Action) -> dict[str, Any] | None:
        if isinstance(a, Suppressed):
            return None  # recorded in the store, seen by nobody
        rule = a.rule
        klass = RULE_CLASS[rule]
        # One open alert per (site, home, rule); a life-safety event from a device with
        # no home is one per device (the store's open_key with the device as subject).
        subject = a.device if home is None and isinstance(a, Raise) else None
        key = (site, home, rule, subject)
        if isinstance(a, Watch):
            return _line(a.at_ms, site, home, rule, Priority.LOW, "watch", [WATCH_LIST],
                         list(a.reasons), a.device)
        if isinstance(a, Clear):
            was = self._open.pop(key, None)
            if was is None or klass is AlertClass.LIFE_SAFETY:
                if was is not None:
                    self._open[key] = was
                return None
            return _line(a.at_ms, site, home, rule, was.priority, "resolve",
                         roles(was.priority, home), [a.reason], None)
        assert isinstance(a, Raise)
        level = _level(a.detail)
        why = reasons(rule, a.detail)
        now = self._open.get(key)
        if now is None:
            self._open[key] = _Open(a.priority, level)
            return _line(a.at_ms, site, home, rule, a.priority, "raise",
                         roles(a.priority, home), why, a.device)
        worse = _RANK[a.priority] > _RANK[now.priority] or level > now.level
        if _RANK[a.priority] > _RANK[now.priority]:
            now.priority = a.priority
        now.level = max(now.level, level)
        news = worse or klass is AlertClass.LIFE_SAFETY  # a new press is news
        return _line(a.at_ms, site, home, rule, now.priority, "notify" if news else "update",
                     roles(now.priority, home), why, a.device)


def _level(detail: Mapping[str, Any]) -> int:
    v = detail.get("tier", detail.get("level", 0))
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _line(t_ms: int, site: str, home: str | None, rule: Rule, priority: Priority,
          action: str, to: list[str], why: list[str], device: str | None
          ) -> dict[str, Any]:
    line: dict[str, Any] = {
        "t_ms": t_ms, "site": site, "home": home, "rule": rule.value,
        "class": RULE_CLASS[rule].value, "priority": priority.value, "action": action,
        "to": to, "reasons": why,
    }
    if device is not None:
        line["device"] = device
    return line
