"""``dolbom alerts replay``: the real rules over a recorded stream (DESIGN.md §5 "Replay")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dolbom.alerts.replay import ReplayError, replay
from dolbom.cli import main
from tests.alerts.enginekit import MIN, H, local

SITE = "site-a"
T0 = local(2, 8)  # Monday 08:00 in Seoul


def home(hid: str = "h1", devices: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"site": SITE, "home": hid, "devices": devices or [
        {"id": f"{hid}-pir", "kind": "pir", "power": "mains", "hb_s": 60},
        {"id": f"{hid}-btn", "kind": "button", "power": "battery", "hb_s": 300},
    ], **extra}


class Stream:
    """A recorded stream, written as messages.jsonl lines."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.seq: dict[str, int] = {}

    def add(self, rx: int, dev: str, suffix: str, payload: Any) -> None:
        self.lines.append(orjson.dumps({"rx_ms": rx, "topic": f"care/v1/{SITE}/{dev}/{suffix}",
                                        "payload": payload}))

    def event(self, rx: int, dev: str, kind: str, val: str | None = None,
              seq: int | None = None, **more: Any) -> None:
        n = self.seq[dev] = self.seq.get(dev, 0) + 1
        body: dict[str, Any] = {"v": 1, "boot": 1, "seq": n if seq is None else seq,
                                "ts": rx, "tq": 2, **more}
        if val is not None:
            body["val"] = val
        self.add(rx, dev, f"event/{kind}", body)

    def heartbeats(self, dev: str, start: int, end: int, every: int = MIN) -> None:
        for t in range(start, end, every):
            n = self.seq[dev] = self.seq.get(dev, 0) + 1
            self.add(t, dev, "telemetry", {"v": 1, "boot": 1, "seq": n, "ts": t, "tq": 2,
                                            "readings": {"rssi_dbm": -60}})

    def sorted(self) -> list[bytes]:
        return sorted(self.lines, key=lambda b: orjson.loads(b)["rx_ms"])


def run(homes: list[dict[str, Any]], lines: list[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    replay({"homes": homes}, lines, out.append)
    return out


def test_inactivity_is_told_to_the_care_worker_and_resolves_on_motion() -> None:
    """A home silent for the inactivity tier is raised to its care worker and resolved
    when motion resumes, with the times of the recorded clock."""
    s = Stream()
    s.event(T0, "h1-pir", "motion")
    s.heartbeats("h1-pir", T0, T0 + 30 * H, every=MIN)
    s.event(T0 + 30 * H, "h1-pir", "motion")
    out = [a for a in run([home()], s.sorted()) if a["rule"] == "inactivity"]
    raised = [a for a in out if a["action"] in ("raise", "notify")]
    assert raised and raised[0]["to"] == ["care_worker"]
    assert raised[0]["class"] == "welfare" and raised[0]["site"] == SITE
    assert T0 < raised[0]["t_ms"] < T0 + 30 * H
    assert out[-1]["action"] == "resolve" and out[-1]["t_ms"] == T0 + 30 * H


def test_a_button_press_is_raised_once_per_event_and_again_for_a_new_press() -> None:
    """The same (dev, boot, seq) re-sent is one alert; a new press on the still-open
    alert notifies again; both go to responders and the care worker."""
    s = Stream()
    s.event(T0, "h1-btn", "button", seq=7)
    s.event(T0 + 5_000, "h1-btn", "button", seq=7)  # the device outbox re-sends it
    s.event(T0 + H, "h1-btn", "button", seq=8)
    out = [a for a in run([home()], s.sorted()) if a["rule"] == "button"]
    assert [a["action"] for a in out] == ["raise", "notify"]
    assert out[0]["to"] == ["responder", "care_worker"] and out[0]["priority"] == "high"
    assert out[0]["t_ms"] == T0 and out[0]["device"] == "h1-btn"


@pytest.mark.parametrize("payload", ["{not json", {"v": 1, "boot": "x", "seq": -1}, "ok"])
def test_a_broken_life_safety_payload_still_raises_from_its_topic(payload: Any) -> None:
    """A button press whose payload fails validation is raised from the topic alone,
    once, however often the broker redelivers it."""
    s = Stream()
    s.add(T0, "h1-btn", "event/button", payload)
    s.add(T0 + 1000, "h1-btn", "event/button", payload)
    out = [a for a in run([home()], s.sorted()) if a["rule"] == "button"]
    assert [a["action"] for a in out] == ["raise"]
    assert "failed validation" in " ".join(out[0]["reasons"])


def test_a_smoke_alarm_from_a_device_in_no_home_goes_to_the_site() -> None:
    """A detector registered to no home (a corridor) still reaches people: the site's
    supervisors, responders and operators."""
    s = Stream()
    s.event(T0, "corridor-smoke", "smoke")
    out = run([home()], s.sorted())
    assert len(out) == 1
    assert out[0]["home"] is None and out[0]["rule"] == "smoke"
    assert out[0]["to"] == ["supervisor", "responder", "operator"]


def test_away_mode_from_the_homes_file_suppresses_welfare_but_not_life_safety() -> None:
    """A mode change at t_ms holds from then on: no inactivity alert while away, and a
    button press is still raised."""
    s = Stream()
    s.event(T0, "h1-pir", "motion")
    s.heartbeats("h1-pir", T0, T0 + 40 * H, every=MIN)
    s.event(T0 + 39 * H, "h1-btn", "button")
    out = run([home(modes=[{"t_ms": T0 + H, "mode": "away"}])], s.sorted())
    assert [a["rule"] for a in out if a["class"] != "technical"] == ["button"]


def test_a_lost_sensor_is_a_technical_alert_not_inactivity() -> None:
    """The only activity sensor goes quiet: the care worker hears that it is lost
    (medium, technical), never that the resident is inactive."""
    s = Stream()
    s.event(T0, "h1-pir", "motion")
    s.heartbeats("h1-pir", T0, T0 + H)
    s.heartbeats("h1-btn", T0, T0 + 40 * H, every=MIN)
    out = run([home()], s.sorted())
    assert {a["rule"] for a in out} == {"device_lost"}
    assert out[0]["class"] == "technical" and "care_worker" in out[0]["to"]


def test_lines_are_in_time_order_and_bad_lines_are_counted() -> None:
    """Garbage lines are counted and skipped; the output is in time order."""
    s = Stream()
    s.event(T0, "h1-btn", "button")
    lines = [b"not json", b'{"rx_ms": 1}', *s.sorted(), b"\n"]
    out: list[dict[str, Any]] = []
    stats = replay({"homes": [home()]}, lines, out.append)
    assert stats.bad_lines == 2 and stats.messages == 1
    assert [a["t_ms"] for a in out] == sorted(a["t_ms"] for a in out)


@pytest.mark.parametrize(("doc", "words"), [
    ({}, "expected"),
    ({"homes": [{"site": SITE}]}, "needs a site and a home"),
    ({"homes": [home(), home()]}, "listed twice"),
    ({"homes": [home(thresholds={"heat_c": "hot"})]}, "heat_c"),
    ({"homes": [home(thresholds={"no_such": 1})]}, "no_such"),
    ({"homes": [home(timezone="Mars/Olympus")]}, "time zone"),
    ({"homes": [home(devices=[{"id": "x"}])]}, "kind"),
    ({"homes": [home(modes=[{"t_ms": 1, "mode": "holiday"}])]}, "holiday"),
])
def test_a_bad_homes_file_is_one_clear_error(doc: dict[str, Any], words: str) -> None:
    """A homes file that cannot be used stops the replay with a line naming the problem."""
    with pytest.raises(ReplayError, match=words):
        replay(doc, [], lambda _: None)


def test_the_command_writes_alerts_jsonl(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom alerts replay` reads the two files and writes one JSON line per alert."""
    s = Stream()
    s.event(T0, "h1-btn", "fall")
    (tmp_path / "homes.json").write_bytes(orjson.dumps({"homes": [home()]}))
    (tmp_path / "messages.jsonl").write_bytes(b"\n".join(s.sorted()) + b"\n")
    out = tmp_path / "alerts.jsonl"
    rc = main(["alerts", "replay", "--homes", str(tmp_path / "homes.json"), "--messages",
               str(tmp_path / "messages.jsonl"), "--out", str(out), "-q"])
    assert rc == 0
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(a["rule"], a["action"]) for a in lines] == [("fall", "raise")]
    assert "1 alert lines" in capsys.readouterr().err
    rc = main(["alerts", "replay", "--homes", str(tmp_path / "nope.json"), "--messages",
               str(tmp_path / "messages.jsonl"), "--out", str(out), "-q"])
    assert rc == 1
    assert "cannot read" in capsys.readouterr().err


def test_an_outbox_fault_in_a_status_reaches_the_care_worker() -> None:
    """The wire's "ob" counters in a node's status become a technical alert through the
    same feed the service uses."""
    s = Stream()
    s.add(T0, "h1-btn", "status", {"state": "ready", "boot": 2, "hb": 300,
                                   "ob": {"depth": 0, "evicted": 2, "merged": 0, "werr": 0}})
    out = [a for a in run([home()], s.sorted()) if a["rule"] == "outbox_fault"]
    assert [(a["action"], a["priority"], a["to"]) for a in out] == [
        ("raise", "medium", ["care_worker"])]


def test_a_heatwave_is_one_list_by_risk_not_a_push_per_home() -> None:
    """Five homes of a site over 32 °C within the hour: the first two are told, then the
    workers and supervisors get one list ordered by risk; the rest are opened on the list
    (their alerts exist and are seen there), not pushed one by one; the list resolves
    when the last home cools."""
    homes = [home(f"w{k}", devices=[{"id": f"w{k}-t", "kind": "multisensor",
                                     "power": "mains", "hb_s": 60}]) for k in range(5)]
    s = Stream()
    for k in range(5):
        start = T0 + k * 5 * MIN
        for m in range(0, 50, 5):
            s.add(start + m * MIN, f"w{k}-t", "telemetry",
                  {"v": 1, "boot": 1, "seq": 1000 + m, "ts": start + m * MIN, "tq": 2,
                   "readings": {"temperature_c": 33.0 + k}})
    for k in range(5):
        s.add(T0 + 3 * H + k * MIN, f"w{k}-t", "telemetry",
              {"v": 1, "boot": 1, "seq": 2000, "ts": T0 + 3 * H + k * MIN, "tq": 2,
               "readings": {"temperature_c": 24.0}})
    out = [a for a in run(homes, s.sorted()) if a["rule"] == "heat"]
    pushed = [a["home"] for a in out if a["action"] == "raise" and a["home"] and "via" not in a]
    listed = [a["home"] for a in out
              if a["action"] == "raise" and a["home"] and a.get("via") == "site_list"]
    assert len(pushed) == 2 and sorted(pushed + listed) == ["w0", "w1", "w2", "w3", "w4"]
    lists = [a for a in out if a["home"] is None]
    assert [a["action"] for a in lists] == ["raise", "update", "update", "resolve"]
    assert lists[0]["to"] == ["care_worker", "supervisor"]
    assert "w4 37.0 °C, w3 36.0 °C, w2 35.0 °C" in lists[-2]["reasons"][0]  # hottest first
