"""What people would see of the rules' actions (DESIGN.md §5 "Goes to", "Lifecycle").

A pure mirror of what the alert store does with ``Raise`` / ``Clear`` / ``Watch``
(``lifecycle.raise_alert``, ``auto_resolve``, ``recipients.recipients``), without a database:
``dolbom alerts replay`` writes its lines from it, and the care-outcome evaluation
counts them.

* one open alert per (site, home, rule): the first ``Raise`` opens it and tells its
  people (``raise``); a repeat that is worse (a higher priority, a higher inactivity
  tier or heat level) or a new life-safety event tells them again (``notify``); any
  other repeat only updates the open alert (``update``);
* a ``Clear`` resolves an open welfare or technical alert (``resolve``); life-safety
  alerts are resolved only by a person, which a replay has not got, so they stay open
  and every later event of the rule notifies;
* a ``Watch`` goes to the console's daily watch list (``watch``), never a push;
* when ``WAVE_HOMES`` homes of a site cross the same heat (cold) limit within
  ``WAVE_WINDOW`` (a heatwave, a cold snap), the care workers of those homes and the
  site's supervisors get one list ordered by risk (a line with no home), and each further
  home's alert is opened on it (``raise`` with ``"via": "site_list"``: its workers see it
  on the list, which is the one push) instead of pushed on its own; the list resolves
  when no home is over the limit.

Roles by priority (``recipients``, tier 1): high → the site's responders and the
home's care workers; medium → the care workers; low → the operators. A life-safety
event from a device with no home goes to the site's supervisors, responders and
operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dolbom.alerts.model import (
    RULE_CLASS,
    WAVE_HOMES,
    WAVE_RULES,
    WAVE_WINDOW,
    AlertClass,
    Priority,
    Rule,
)
from dolbom.alerts.rules.actions import Action, Clear, Raise, Suppressed, Watch

_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
ROLES: dict[Priority, tuple[str, ...]] = {
    Priority.HIGH: ("responder", "care_worker"),
    Priority.MEDIUM: ("care_worker",),
    Priority.LOW: ("operator",),
}
UNROUTED_ROLES = ("supervisor", "responder", "operator")
WATCH_LIST = "watch_list"


def roles(priority: Priority, home: str | None) -> list[str]:
    """Who is told first about an alert of ``priority`` (a home's or, None, a site's:
    a site's medium alert, e.g. its heat list, goes to its supervisors)."""
    if home is None and priority is Priority.HIGH:
        return list(UNROUTED_ROLES)
    if home is None and priority is Priority.MEDIUM:
        return ["supervisor"]
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
        # Heat and cold alerts open per (site, rule): home -> (raised at, °C), for the
        # site's list when many homes cross the same limit at once (lifecycle's wave).
        self._wave: dict[tuple[str, Rule], dict[str, tuple[int, float]]] = {}
        self._pending: list[dict[str, Any]] = []

    def lines(self, site: str, home: str | None, actions: list[Action]
              ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in actions:
            line = self.line(site, home, a)
            if line is not None:
                out.append(line)
            if self._pending:  # a site's list, after the home's own line
                out.extend(self._pending)
                self._pending.clear()
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
            line = _line(a.at_ms, site, home, rule, was.priority, "resolve",
                         roles(was.priority, home), [a.reason], None)
            if rule in WAVE_RULES and home is not None:
                self._wave_clear(site, home, rule, a.at_ms)
            return line
        assert isinstance(a, Raise)
        level = _level(a.detail)
        why = reasons(rule, a.detail)
        now = self._open.get(key)
        if now is None:
            self._open[key] = _Open(a.priority, level)
            if rule in WAVE_RULES and home is not None and self._wave_join(site, home, a):
                # The home's alert is open and its workers see it, on the site's list:
                # one push for the list, not one for this home ("via").
                line = _line(a.at_ms, site, home, rule, a.priority, "raise",
                             roles(a.priority, home),
                             [*why, f"listed on the site's {rule.value} list"], a.device)
                line["via"] = "site_list"
                return line
            return _line(a.at_ms, site, home, rule, a.priority, "raise",
                         roles(a.priority, home), why, a.device)
        worse = _RANK[a.priority] > _RANK[now.priority] or level > now.level
        if _RANK[a.priority] > _RANK[now.priority]:
            now.priority = a.priority
        now.level = max(now.level, level)
        news = worse or klass is AlertClass.LIFE_SAFETY  # a new press is news
        return _line(a.at_ms, site, home, rule, now.priority, "notify" if news else "update",
                     roles(now.priority, home), why, a.device)


    # -- many homes over the same limit at once (lifecycle._in_a_wave) ------------------
    def _wave_join(self, site: str, home: str, a: Raise) -> bool:
        """Whether the new heat (cold) alert of ``home`` joins its site's list (the list's
        own line is queued here): WAVE_HOMES homes within WAVE_WINDOW open the list."""
        homes = self._wave.setdefault((site, a.rule), {})
        t = a.detail.get("temperature_c")
        homes[home] = (a.at_ms, float(t) if isinstance(t, int | float) else 0.0)
        key = (site, None, a.rule, "list")
        window = int(WAVE_WINDOW.total_seconds() * 1000)
        recent = [h for h, (at, _) in homes.items() if at >= a.at_ms - window]
        if key not in self._open and len(recent) < WAVE_HOMES:
            return False
        sign = 1.0 if a.rule is Rule.HEAT else -1.0
        ranked = sorted(homes.items(), key=lambda kv: -sign * kv[1][1])
        listing = ", ".join(f"{h} {c:.1f} °C" for h, (_, c) in ranked)
        why = [f"{a.rule.value} in {len(ranked)} homes of the site at once; one list by "
               f"risk: {listing}"]
        action = "update" if key in self._open else "raise"
        self._open.setdefault(key, _Open(Priority.MEDIUM, 0))
        # The list goes to the site's supervisors and once to each care worker of a listed
        # home (lifecycle._tell_workers): a push per worker, not per home.
        self._pending.append(_line(a.at_ms, site, None, a.rule, Priority.MEDIUM, action,
                                   ["care_worker", "supervisor"], why, None))
        return True

    def _wave_clear(self, site: str, home: str, rule: Rule, at: int) -> None:
        homes = self._wave.get((site, rule), {})
        homes.pop(home, None)
        key = (site, None, rule, "list")
        if not homes and self._open.pop(key, None) is not None:
            self._pending.append(_line(at, site, None, rule, Priority.MEDIUM, "resolve",
                                       roles(Priority.MEDIUM, None),
                                       ["no home of the site over the limit any more"], None))


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
