"""CPU priority of the services (dolbom/priority.py): the bulk work lowers its own, the
alarm process sets its own back, and says what to change where it may not."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from dolbom import priority


def test_only_root_or_the_nice_limit_lets_a_priority_be_raised_again() -> None:
    assert priority.can_restore(0, euid=lambda: 0, limit=lambda: 0)
    assert not priority.can_restore(0, euid=lambda: 1000, limit=lambda: 0)  # the default
    assert priority.can_restore(0, euid=lambda: 1000, limit=lambda: 20)  # LimitNICE=+0
    assert not priority.can_restore(0, euid=lambda: 1000, limit=lambda: 15)  # nice 5 at best
    assert priority.can_restore(5, euid=lambda: 1000, limit=lambda: 15)
    assert priority.can_restore(0, euid=lambda: 1000, limit=lambda: resource.RLIM_INFINITY)


def _child(code: str) -> str:
    """Run ``code`` with dolbom.priority in a fresh interpreter (a nice value set here
    would stay with this test process); its output and log."""
    out = subprocess.run(
        [sys.executable, "-c", "import logging, sys; logging.basicConfig(stream=sys.stdout, "
         "format='%(levelname)s %(message)s', level=logging.INFO)\n"
         "from dolbom import priority as p\n" + code],
        capture_output=True, text=True, timeout=30, check=True)
    return out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_lowered_then_restored_as_root_and_refused_with_advice_as_another_user() -> None:
    out = _child("print(p.lower(5, 'bulk')); print(p.lower(3, 'bulk')); "
                 "print(p.restore(0, 'alarm')); print(p.current())")
    assert "INFO bulk runs at nice 5" in out and "INFO alarm runs at nice 0" in out
    lines = [ln for ln in out.splitlines() if not ln.startswith("INFO")]
    assert lines == ["5", "5", "0", "0"]  # never raised by lower(), set back by restore()

    # a process of an unprivileged user, spawned by one at nice 5 (the interpreter is
    # started as root: nobody may not read it; it becomes nobody before the call)
    out = _child("import os; os.setpriority(os.PRIO_PROCESS, 0, 5)\n"
                 "os.setgid(65534); os.setuid(65534)\n"
                 "print(p.restore(0, 'the alarm process')); print(p.current())")
    assert out.splitlines()[-2:] == ["5", "5"]
    assert "WARNING the alarm process runs at nice 5, not 0" in out
    assert "LimitNICE=+0" in out


@pytest.mark.parametrize(("mode", "restorable", "lowered"), [
    ("spawn", True, True), ("spawn", False, False), ("external", False, True),
    ("inline", True, False)])
def test_the_rules_process_gives_up_priority_only_where_the_alarm_path_keeps_its_own(
        monkeypatch: pytest.MonkeyPatch, mode: str, restorable: bool, lowered: bool) -> None:
    """Spawned, the alarm process inherits the rules process's nice value: the rules
    process lowers its own only if the child may set its own back. Inline, the alarm path
    is the rules process itself; external, it is not its child."""
    from dolbom.alerts import supervisor
    from dolbom.alerts.settings import AlertsSettings

    calls: list[int] = []

    def lower(to: int, what: str) -> int:
        calls.append(to)
        return to

    monkeypatch.setattr(priority, "can_restore", lambda to: restorable)
    monkeypatch.setattr(priority, "lower", lower)
    monkeypatch.setattr(priority, "current", lambda: 0)
    settings = AlertsSettings(database_url="sqlite:///:memory:",
                              alerts={"alarm_process": mode, "rules_nice": 7})
    assert supervisor.rules_priority(settings) == (7 if lowered else 0)
    assert calls == ([7] if lowered else [])
