"""The registry, alert and report routes do what the CLI does, for the people allowed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dolbom.alerts import lifecycle
from dolbom.alerts.model import EscalationTable, Outcome, Priority, Rule
from dolbom.mqtt import Client, ConnectRefused
from dolbom.registry import cells
from dolbom.registry.models import User
from dolbom.stack.mosquitto import Mosquitto
from tests.api.conftest import World

P = "/api/v1"


async def test_provision_and_revoke_update_the_real_broker(
        make_world: Any, sqlite_url: str, make_mosquitto: Callable[[], Mosquitto]) -> None:
    """POST /devices returns the MQTT password once, and the broker accepts it at once;
    revoke locks the device out (same broker-update path as `dolbom device add`)."""
    broker = make_mosquitto()
    files = broker.files
    w: World = make_world(sqlite_url, broker_passwd=files.passwd, broker_acl=files.acl,
                          broker_pid_file=files.pid_file, broker_owner=files.owner)
    r = w.post("sup1", f"{P}/devices", json={"id": "s1-door-77", "site_id": "s1", "home_id": "h1",
                                            "kind": "door", "power": "battery"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["broker_updated"] is True and body["warning"] is None
    password = body["mqtt_password"]
    assert len(password) >= 24 and body["mqtt_username"] == "s1-door-77"
    assert password not in w.get("sup1", f"{P}/devices/s1-door-77").text  # shown once
    client = Client("127.0.0.1", broker.port, "s1-door-77", username="s1-door-77",
                    password=password)
    await client.connect(timeout=5.0)
    await client.disconnect()
    r = w.post("sup1", f"{P}/devices/s1-door-77/revoke")
    assert r.status_code == 200 and r.json()["device"]["revoked_at"] is not None
    with pytest.raises(ConnectRefused):
        await Client("127.0.0.1", broker.port, "s1-door-77", username="s1-door-77",
                     password=password).connect(timeout=5.0)
    assert "s1-door-77" not in {d["id"] for d in w.get("sup1", f"{P}/devices").json()}


def test_provision_without_broker_files_says_so(world: World) -> None:
    r = world.post("admin", f"{P}/devices", json={"id": "x-1", "site_id": "s2", "kind": "plug"})
    assert r.status_code == 201
    assert r.json()["broker_updated"] is False and "sync-broker" in r.json()["warning"]
    r = world.post("admin", f"{P}/devices", json={"id": "x-1", "site_id": "s2", "kind": "plug"})
    assert r.status_code == 409 and "already" in r.json()["detail"]
    r = world.post("admin", f"{P}/devices", json={"id": "x-2", "site_id": "s2",
                                                  "kind": "toaster"})
    assert r.status_code == 422 and "kind" in r.json()["detail"]


def test_registry_crud_by_role(world: World) -> None:
    assert world.post("sup1", f"{P}/sites", json={"id": "s3", "name": "Three"}).status_code \
        == 403
    r = world.post("admin", f"{P}/sites", json={"id": "s3", "name": "Three"})
    assert r.status_code == 201 and r.json()["cell"] == "default"
    r = world.post("admin", f"{P}/sites", json={"id": "s4", "name": "Four", "cell": "busan-1"})
    assert r.status_code == 201 and r.json()["cell"] == "busan-1"
    r = world.post("admin", f"{P}/sites", json={"id": "s5", "name": "Five", "cell": "Busan 1"})
    assert r.status_code == 422 and "cell" in r.text
    # once cells have endpoints, a site is not put into one without (a typo would give
    # it the fallback broker and InfluxDB)
    with world.sessions.begin() as s:
        cells.add_cell(s, "busan-1", broker_host="busan.example.org", broker_port=8883,
                       influx_url="https://10.0.0.5:8086", influx_db="care")
    r = world.post("admin", f"{P}/sites", json={"id": "s6", "name": "Six", "cell": "busan-2"})
    assert r.status_code == 404 and "busan-2" in r.json()["detail"]  # as an unknown site
    r = world.post("admin", f"{P}/sites", json={"id": "s6", "name": "Six", "cell": "busan-1"})
    assert r.status_code == 201
    assert world.post("sup1", f"{P}/homes", json={"id": "s1-h9", "site_id": "s1"}).status_code \
        == 201
    assert world.post("sup1", f"{P}/homes", json={"id": "h8", "site_id": "s2"}).status_code \
        == 404
    r = world.post("sup1", f"{P}/residents", json={"home_id": "s1-h9", "name": "정미숙",
                                                   "phone": "010-1", "birth_year": 1940})
    assert r.status_code == 201
    rid = r.json()["id"]
    r = world.client.put(f"{P}/residents/{rid}/assignments/w2", headers=world.h("sup1"))
    assert r.status_code == 200 and [u["username"] for u in r.json()] == ["w2"]
    assert world.get("w2", f"{P}/residents/{rid}").json()["care_workers"] == ["w2"]
    r = world.client.put(f"{P}/residents/{rid}/assignments/sup2", headers=world.h("sup1"))
    assert r.status_code == 404  # not a care worker of this site


@pytest.mark.parametrize(("key", "value", "status"), [
    ("inactivity_caution_h", 8, 200),
    ("sleep_start", "23:30", 200),
    ("timezone", "Asia/Seoul", 200),
    ("timezone", "Mars/Olympus", 422),
    ("sleep_start", "25:00", 422),
    ("inactivity_caution_h", -1, 422),
    ("inactivity_caution_h", "soon", 422),
    ("no_such_threshold", 1, 404),
    ("wandering", 1, 404),  # a resident column, not a threshold
])
def test_resident_thresholds_are_validated(world: World, key: str, value: object,
                                           status: int) -> None:
    rid = world.residents["h1"]
    r = world.client.put(f"{P}/residents/{rid}/settings/{key}", headers=world.h("sup1"),
                         json={"value": value})
    assert r.status_code == status, r.text
    if status == 200:
        assert world.get("w1", f"{P}/residents/{rid}/settings").json()[key] == value
        r = world.client.delete(f"{P}/residents/{rid}/settings/{key}", headers=world.h("sup1"))
        assert r.status_code == 200 and key not in r.json()


def test_home_mode_needs_a_reason(world: World) -> None:
    r = world.client.put(f"{P}/homes/h2/mode", headers=world.h("sup1"),
                         json={"mode": "away", "reason": " "})
    assert r.status_code == 422 and "why" in r.json()["detail"]
    r = world.client.put(f"{P}/homes/h2/mode", headers=world.h("sup1"),
                         json={"mode": "away", "reason": "visiting family"})
    assert r.status_code == 200 and r.json()["mode"] == "away"
    r = world.client.put(f"{P}/homes/h2/mode", headers=world.h("sup1"), json={"mode": "normal"})
    assert r.json()["mode"] == "normal" and r.json()["mode_reason"] is None


def test_alert_lifecycle_through_the_api(world: World) -> None:
    """ack → note → resolve with an outcome, each on the timeline with who and when."""
    aid = world.alerts["h1"]
    world.clock.advance(12)
    r = world.post("w1", f"{P}/alerts/{aid}/ack")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["assignee"] == "w1"
    assert world.post("w1", f"{P}/alerts/{aid}/notes", json={"text": "on my way"}).status_code \
        == 200
    r = world.post("w1", f"{P}/alerts/{aid}/resolve",
                   json={"outcome": "false_alarm", "note": "pendant pressed by mistake"})
    assert r.status_code == 200 and r.json()["outcome"] == "false_alarm"
    r = world.post("w1", f"{P}/alerts/{aid}/resolve", json={"outcome": "visited_ok"})
    assert r.status_code == 409 and "already resolved" in r.json()["detail"]
    r = world.post("w1", f"{P}/alerts/{aid}/resolve", json={"outcome": "auto_cleared"})
    assert r.status_code == 422
    detail = world.get("w1", f"{P}/alerts/{aid}").json()
    kinds = [(e["kind"], e["actor"]) for e in detail["timeline"]]
    assert kinds == [("raised", "system"), ("acknowledged", "w1"), ("note", "w1"),
                     ("note", "w1"), ("resolved", "w1")]
    assert detail["timeline"][1]["detail"]["seconds"] == 42.0
    assert world.get("w1", f"{P}/alerts").json() == []  # default: open and acknowledged
    assert [a["id"] for a in world.get("w1", f"{P}/alerts",
                                       params={"status": ["resolved"]}).json()] == [aid]


def test_alert_filters(world: World) -> None:
    def ids(**params: Any) -> set[int]:
        return {a["id"] for a in world.get("admin", f"{P}/alerts", params=params).json()}

    a = world.alerts
    assert ids(priority="high") == {a["h1"], a["h3"]}
    assert ids(site="s2") == {a["h4"]}
    assert ids(priority="high", site="s2") == set()
    world.post("admin", f"{P}/alerts/{a['h2']}/assign", json={"username": "w2"})
    assert ids(worker="w2") == {a["h2"]}
    assert ids(worker="nobody") == set()


def test_response_time_report_against_the_targets(world: World) -> None:
    """Per site and month: time to acknowledge and resolve vs 60 s / 180 s (lifecycle's
    response_stats), here 2 high alerts acknowledged at 40 s and 200 s after raising."""
    table = EscalationTable()
    with world.sessions.begin() as s:
        w1 = s.get(User, world.users["w1"])
        assert w1 is not None
        t0 = world.clock()
        for home, (at, rule) in {"h1": (40, Rule.FALL), "h3": (200, Rule.BUTTON)}.items():
            lifecycle.resolve(s, world.alerts[home], Outcome.VISITED_OK, w1, t0)  # the seeds
            aid = lifecycle.raise_alert(s, site="s1", home=home, rule=rule,
                                        priority=Priority.HIGH, at=t0, table=table).alert_id
            lifecycle.acknowledge(s, aid, w1, t0 + timedelta(seconds=at))
            lifecycle.resolve(s, aid, Outcome.VISITED_OK, w1, t0 + timedelta(seconds=at + 60))
    r = world.get("sup1", f"{P}/reports/response-times", params={"month": "2026-11"})
    assert r.status_code == 200
    (row,) = r.json()
    assert row["site_id"] == "s1" and row["month"] == "2026-11" and row["alerts"] == 4
    assert row["within_60s"] == 0.75 and row["within_180s"] == 0.75
    assert row["meets_60s_target"] is False
    assert world.get("sup1", f"{P}/reports/response-times",
                     params={"site": "s2"}).status_code == 404
    assert len(world.get("admin", f"{P}/reports/response-times").json()) == 2
    assert world.get("w1", f"{P}/reports/response-times").status_code == 403
    assert world.get("admin", f"{P}/reports/response-times",
                     params={"month": "2026-13"}).status_code == 422


def test_false_alarm_report_names_the_devices(world: World) -> None:
    """Devices whose alerts were resolved as false alarms, most first."""
    table = EscalationTable()
    with world.sessions.begin() as s:
        w1 = s.get(User, world.users["w1"])
        assert w1 is not None
        now = world.clock()
        lifecycle.resolve(s, world.alerts["h1"], Outcome.FALSE_ALARM, w1, now)
        for i in range(2):
            aid = lifecycle.raise_alert(s, site="s1", home="h3", rule=Rule.SMOKE,
                                        priority=Priority.HIGH, table=table, device="d-h3",
                                        at=now + timedelta(minutes=i)).alert_id
            lifecycle.resolve(s, aid, Outcome.FALSE_ALARM, w1, now + timedelta(minutes=i))
    r = world.get("sup1", f"{P}/reports/false-alarms")
    assert r.status_code == 200
    assert [(x["device_id"], x["false_alarms"]) for x in r.json()] == [("d-h3", 2),
                                                                       ("d-h1", 1)]
    assert world.get("sup2", f"{P}/reports/false-alarms").json() == []


def test_health_and_metrics(world: World) -> None:
    h = world.client.get("/health").json()
    assert h["database"] is True and h["influxdb"] is False and h["status"] == "degraded"
    world.get("w1", f"{P}/residents/{world.residents['h1']}")
    text = world.client.get("/metrics").text
    assert ('dolbom_api_requests_total{method="GET",route="/api/v1/residents/{resident_id}",'
            'status="200"} 1.0') in text
    assert "dolbom_api_request_seconds_bucket" in text
    assert "dolbom_api_sse_subscribers 0.0" in text
    assert "dolbom_api_audit_entries_total 1.0" in text


def test_errors_are_json_with_a_detail(world: World) -> None:
    for r in (world.get("w1", f"{P}/residents/999999"),
              world.get("w1", f"{P}/residents/abc"),
              world.get("w1", f"{P}/homes/NOT-AN-ID"),
              world.client.get(f"{P}/alerts")):
        assert r.status_code in (401, 404, 422)
        assert r.headers["content-type"] == "application/json" and r.json()["detail"]


def test_core_flow_on_both_databases(store_world: World) -> None:
    """The main reads and changes, the reports' SQL and the audit chain, on SQLite and on
    the real PostgreSQL."""
    w = store_world
    aid, rid = w.alerts["h1"], w.residents["h1"]
    assert w.get("w1", f"{P}/residents/{rid}").status_code == 200
    assert w.get("w2", f"{P}/residents/{rid}").status_code == 404
    assert {a["id"] for a in w.get("w1", f"{P}/alerts").json()} == {aid}
    assert w.post("w1", f"{P}/alerts/{aid}/ack").status_code == 200
    r = w.post("w1", f"{P}/alerts/{aid}/resolve", json={"outcome": "false_alarm"})
    assert r.status_code == 200
    assert w.get("sup1", f"{P}/reports/response-times").json()[0]["acknowledged"] == 1
    assert [x["device_id"] for x in w.get("admin", f"{P}/reports/false-alarms").json()] == \
        ["d-h1"]
    r = w.client.put(f"{P}/residents/{rid}/settings/heat_c", headers=w.h("sup1"),
                     json={"value": 30.5})
    assert r.status_code == 200 and r.json() == {"heat_c": 30.5}
    r = w.client.delete(f"{P}/residents/{rid}/assignments/w1", headers=w.h("sup1"))
    assert r.status_code == 200
    assert w.get("w1", f"{P}/alerts/{aid}").status_code == 404
    from dolbom.api.audit import load_key, verify_chain

    with w.sessions() as s:
        result = verify_chain(s, load_key(w.settings))
    assert result.ok and result.entries >= 5
