"""Ingest end to end: real Mosquitto, real InfluxDB 1.6, real registry database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from dolbom.influx.influxql import rollup_1h_select
from dolbom.protocol import (
    Envelope,
    Sample,
    encode_batch,
    encode_event,
    encode_status,
    encode_telemetry,
)
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack
from tests.integration.conftest import (
    TOPICS,
    device_client,
    env,
    eventually,
    ingest_settings,
    provision,
    running_ingest,
)

pytestmark = pytest.mark.integration
T = TOPICS
OUTAGE_S = 60


def count(stack: Stack, q: str) -> int:
    return stack.influx_admin().count(q, "care")


async def test_contract_messages_become_exactly_the_expected_points(
        stack: Stack, tmp_path: Path) -> None:
    """Status, telemetry (single and batch) and events land as exactly the expected points."""
    pw = provision(stack, "s1", "h01", {"pir-h01": "multisensor", "door-h01": "door"})
    now = int(time.time() * 1000)
    async with running_ingest(ingest_settings(stack, tmp_path)) as ing, \
            device_client(stack, "pir-h01", pw["pir-h01"]) as pir, \
            device_client(stack, "door-h01", pw["door-h01"]) as door:
        await pir.publish(T.status("s1", "pir-h01"),
                          encode_status("ready", boot=1, fw="1.0.0", kind="multisensor",
                                        hb=60), qos=1, retain=True)
        await pir.publish(T.telemetry("s1", "pir-h01"),
                          encode_telemetry(env(1, ts=now), {"temperature_c": 22.5,
                                                            "humidity_pct": 41}), qos=1)
        await pir.publish(T.telemetry("s1", "pir-h01"), encode_batch(
            env(2, ts=now), [Sample(now - 120_000, {"battery_pct": 90}),
                             Sample(now - 60_000, {"battery_pct": 89})]), qos=1)
        await pir.publish(T.event("s1", "pir-h01", "motion"), encode_event(env(3, ts=now)),
                          qos=1)
        await door.publish(T.event("s1", "door-h01", "door"),
                           encode_event(env(1, ts=now + 1), "open"), qos=1)
        await eventually(lambda: ing.snapshot().points_written == 6, what="6 points")
    admin = stack.influx_admin()
    events = admin.rows('SELECT * FROM "event" GROUP BY *', "care")
    assert sorted((e["device"], e["type"], e.get("val"), e["seq"], e["time"]) for e in events) \
        == [("door-h01", "door", "open", 1, now + 1), ("pir-h01", "motion", None, 3, now)]
    assert {e["home"] for e in events} == {"h01"} and {e["site"] for e in events} == {"s1"}
    readings = admin.rows('SELECT * FROM "reading" GROUP BY *', "care")
    assert sorted((r["time"], r.get("temperature_c"), r.get("battery_pct"))
                  for r in readings) == [
        (now - 120_000, None, 90.0), (now - 60_000, None, 89.0), (now, 22.5, None)]
    statuses = admin.rows('SELECT * FROM "device_status" GROUP BY *', "care")
    assert [(s["device"], s["state"], s["boot"], s["hb"]) for s in statuses] == [
        ("pir-h01", "ready", 1, 60)]
    # last seen and state are tracked in the registry
    with session_factory(stack.database_url)() as s:
        devs = {d.id: d for d in registry.list_devices(s)}
    assert devs["pir-h01"].last_state == "ready" and devs["pir-h01"].last_seen_at is not None


async def test_readings_roll_up_per_home_and_minute_then_per_hour(
        stack: Stack, tmp_path: Path) -> None:
    """A home's readings become one `reading_1m` point per minute (the mean over its
    devices), written once the minute has closed; a replayed reading for a minute already
    written is left out and counted; the stack's hourly query rolls the minutes up."""
    pw = provision(stack, "s8", "h08", {"a-h08": "multisensor", "b-h08": "multisensor"})
    hour = (int(time.time()) // 3600 - 1) * 3_600_000  # a whole past hour, in raw's 90 days
    m0 = hour + 5 * 60_000
    now = [m0 / 1000 + 10]  # the ingest's clock (tq 0: readings are stored at receive time)
    async with running_ingest(ingest_settings(stack, tmp_path), lambda: now[0]) as ing, \
            device_client(stack, "a-h08", pw["a-h08"]) as a, \
            device_client(stack, "b-h08", pw["b-h08"]) as b:
        await a.publish(T.telemetry("s8", "a-h08"), encode_telemetry(
            env(1, tq=0), {"temperature_c": 20.0, "humidity_pct": 40.0}), qos=1)
        await b.publish(T.telemetry("s8", "b-h08"), encode_telemetry(
            env(1, tq=0), {"temperature_c": 23.0}), qos=1)
        await eventually(lambda: ing.snapshot().points_written == 2, what="minute 1 stored")
        now[0] += 60  # the next minute
        await a.publish(T.telemetry("s8", "a-h08"), encode_telemetry(
            env(2, tq=0), {"temperature_c": 26.0}), qos=1)
        await eventually(lambda: ing.snapshot().points_written == 3, what="minute 2 stored")
        now[0] += 60 + 30  # both minutes closed, grace passed
        await ing.rollups.write()
        late = Envelope(1, 3, m0 + 20_000, 2, True)  # replayed backlog of the first minute
        await a.publish(T.telemetry("s8", "a-h08"),
                        encode_telemetry(late, {"temperature_c": 99.0}), qos=1)
        await eventually(lambda: ing.snapshot().points_written == 4, what="backlog stored")
        await ing.rollups.write()
        assert ing.rollup.late == 1
    admin = stack.influx_admin()
    rows = admin.rows('SELECT * FROM "rollup"."reading_1m" WHERE home = \'h08\'', "care")
    assert [(r["time"], r["temperature_c"], r.get("humidity_pct"), r["samples"], r["site"])
            for r in rows] == [(m0, 21.5, 40.0, 3, "s8"), (m0 + 60_000, 26.0, None, 1, "s8")]
    assert count(stack, "SELECT count(temperature_c) FROM reading WHERE home = 'h08'") == 4
    admin.query(rollup_1h_select('"care"', f"WHERE time >= {hour}ms AND time < {hour}ms + 1h"),
                "care", method="POST")
    (hourly,) = admin.rows('SELECT * FROM "rollup"."reading_1h" WHERE home = \'h08\'', "care")
    assert (hourly["time"], hourly["temperature_c"], hourly["samples"]) == (hour, 23.75, 4)
    cqs = {row[0]: row[1] for res in admin.query("SHOW CONTINUOUS QUERIES")
           for series in res.get("series", []) if series.get("name") == "care"
           for row in series.get("values", [])}
    assert set(cqs) == {"readings_1h"} and 'FROM care.rollup.reading_1m' in cqs["readings_1h"]


async def test_each_message_delivered_three_times_is_stored_once(
        stack: Stack, tmp_path: Path) -> None:
    """Re-sent messages (same dev, boot, seq) are stored once, even with unsynced clocks."""
    pw = provision(stack, "s2", "h02", {"pir-h02": "multisensor"})
    async with running_ingest(ingest_settings(stack, tmp_path)) as ing, \
            device_client(stack, "pir-h02", pw["pir-h02"]) as c:
        for seq in range(1, 21):
            # tq=0: stored at receive time, so only dedup can stop three copies
            ev = encode_event(env(seq, tq=0), None)
            tel = encode_telemetry(env(100 + seq, tq=0), {"temperature_c": seq})
            for _ in range(3):
                await c.publish(T.event("s2", "pir-h02", "motion"), ev, qos=1)
                await c.publish(T.telemetry("s2", "pir-h02"), tel, qos=1)
                await asyncio.sleep(0.002)
        await eventually(lambda: ing.snapshot().duplicates == 80, what="80 duplicates")
        await eventually(lambda: ing.snapshot().pending == 0, what="all durable")
    assert count(stack, "SELECT count(seq) FROM event WHERE site='s2'") == 20
    assert count(stack, "SELECT count(temperature_c) FROM reading WHERE site='s2'") == 20


async def test_device_resending_minutes_later_adds_no_point(
        stack: Stack, tmp_path: Path) -> None:
    """A device re-sending unacked messages minutes later, after ingest restarted (its
    dedup window empty), overwrites their points: unsynced ones at the first receive
    time, late NTP-timed ones at the device's time."""
    pw = provision(stack, "s9", "h09", {"pir-h09": "multisensor"})
    t0 = time.time() - 3600  # the ingest's clock: within raw's 90 days
    now = [t0]
    sent = [
        (T.event("s9", "pir-h09", "motion"), encode_event(Envelope(1, 1, 5_000, 0))),
        (T.telemetry("s9", "pir-h09"),
         encode_telemetry(Envelope(1, 2, 6_000, 1), {"temperature_c": 20.0})),
        (T.telemetry("s9", "pir-h09"), encode_telemetry(
            Envelope(1, 3, int(t0 * 1000) - 600_000, 2), {"humidity_pct": 40.0})),
    ]
    for minutes in (0, 3, 10):
        now[0] = t0 + 60 * minutes
        async with running_ingest(ingest_settings(stack, tmp_path), lambda: now[0]) as ing, \
                device_client(stack, "pir-h09", pw["pir-h09"]) as c:
            for topic, payload in sent:
                await c.publish(topic, payload, qos=1)
            await eventually(lambda: ing.snapshot().points_written == 3, what="3 points")
    admin = stack.influx_admin()
    (ev,) = admin.rows("SELECT * FROM event WHERE device = 'pir-h09'", "care")
    assert ev["time"] == int(t0 * 1000)
    readings = admin.rows("SELECT * FROM reading WHERE device = 'pir-h09'", "care")
    assert sorted((r["time"], r.get("temperature_c"), r.get("humidity_pct"))
                  for r in readings) == [(int(t0 * 1000) - 600_000, None, 40.0),
                                         (int(t0 * 1000), 20.0, None)]


async def test_malformed_flood_does_not_hurt_valid_messages(
        stack: Stack, tmp_path: Path) -> None:
    """A flood of bad messages: every valid one stored, each bad one dead-lettered with a reason."""
    pw = provision(stack, "s3", "h03", {"pir-h03": "multisensor"})
    bad = [b"not json", b"[]", b'{"v":2}', orjson.dumps({"v": 1, "boot": 1, "seq": -1}),
           b"\xff\xfe\x00"]
    async with running_ingest(ingest_settings(stack, tmp_path)) as ing, \
            device_client(stack, "pir-h03", pw["pir-h03"]) as c:
        for i in range(1, 201):
            for b in bad * 4:  # 20 bad for each good one
                c.publish_nowait(T.telemetry("s3", "pir-h03"), b, qos=0)
            c.publish_nowait(T.event("s3", "pir-h03", "nonsense"),
                             encode_event(env(10_000 + i)), qos=0)
            await c.publish(T.telemetry("s3", "pir-h03"),
                            encode_telemetry(env(i),
                                             {"temperature_c": 20 + i / 100}), qos=1)
        await eventually(lambda: ing.snapshot().dead_letters == 200 * 21
                         and ing.snapshot().pending == 0, 30, "dead letters")
        assert ing.snapshot().points_written == 200
    assert count(stack, "SELECT count(temperature_c) FROM reading WHERE site='s3'") == 200
    with session_factory(stack.database_url)() as s:
        dead = registry.list_dead_letters(s, limit=10_000)
    reasons: dict[str, int] = {}
    for d in dead:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
    assert reasons == {"not_json": 800, "not_object": 800, "bad_version": 800,
                       "bad_field": 800, "not_utf8": 800, "unknown_event_type": 200}
    assert all(d.device == "pir-h03" for d in dead)


async def test_device_cannot_publish_as_another_device(stack: Stack, tmp_path: Path) -> None:
    """A device publishing under another device's topic is refused by the broker; one naming
    another site in its own topics reaches ingest (the broker's device rules are patterns on
    the device id, docs/scale.md) and is dead-lettered there; nothing of either is stored."""
    pw = provision(stack, "s4", "h04", {"pir-h04": "multisensor", "door-h04": "door"})
    async with running_ingest(ingest_settings(stack, tmp_path)) as ing, \
            device_client(stack, "pir-h04", pw["pir-h04"]) as pir:
        for seq in range(1, 6):
            await pir.publish(T.event("s4", "door-h04", "door"),
                              encode_event(env(seq), "open"), qos=1)
            await pir.publish(T.event("s4", "pir-h04", "button"),
                              encode_event(env(seq)), qos=1)  # its own, then another site:
            await pir.publish(T.event("s9", "pir-h04", "motion"),
                              encode_event(env(100 + seq)), qos=1)
        # its own, published last, arrives: so anything refused would have arrived by now
        await pir.publish(T.event("s4", "pir-h04", "motion"), encode_event(env(99)), qos=1)
        await eventually(lambda: ing.snapshot().points_written == 6, what="own events")
        await eventually(lambda: ing.snapshot().dead_letters == 5, what="other site refused")
        await asyncio.sleep(0.5)
    assert count(stack, "SELECT count(seq) FROM event WHERE device='door-h04'") == 0
    assert count(stack, "SELECT count(seq) FROM event WHERE site='s9'") == 0
    assert ing.snapshot().dead_letters == 5 and ing.snapshot().messages == 11


async def test_influxdb_down_60s_under_load_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    """InfluxDB stopped for 60 s while devices keep sending: every point is there afterwards."""
    devices = {f"pir-h05-{i}": "multisensor" for i in range(5)}
    pw = provision(stack, "s5", "h05", devices)
    sent = 0
    stop = asyncio.Event()

    async def device(dev: str) -> None:
        nonlocal sent
        async with device_client(stack, dev, pw[dev]) as c:
            seq = 0
            while not stop.is_set():
                seq += 1
                await c.publish(T.telemetry("s5", dev),
                                encode_telemetry(env(seq), {"temperature_c": 21.0}), qos=1)
                sent += 1
                if seq % 10 == 0:
                    seq += 1
                    await c.publish(T.event("s5", dev, "motion"), encode_event(env(seq)), qos=1)
                    sent += 1
                await asyncio.sleep(0.05)  # 5 devices x ~22 msg/s

    async with running_ingest(ingest_settings(stack, tmp_path)) as ing:
        async with asyncio.TaskGroup() as tg:
            for dev in devices:
                tg.create_task(device(dev))
            await asyncio.sleep(3)
            await asyncio.to_thread(stack.influx.stop)
            await asyncio.sleep(OUTAGE_S)
            spooled_while_down = ing.metrics.spooled._value.get()
            await asyncio.to_thread(stack.influx.start)
            await asyncio.sleep(3)
            stop.set()
        await eventually(lambda: ing.snapshot().pending == 0 and ing.snapshot().spool_files == 0
                         and ing.snapshot().points_written == sent, 60, "spool replay",
                         state=lambda: (ing.snapshot(), sent))
    assert spooled_while_down > 1000
    assert sent > 5000
    total = (count(stack, "SELECT count(temperature_c) FROM reading WHERE site='s5'")
             + count(stack, "SELECT count(seq) FROM event WHERE site='s5'"))
    assert total == sent


async def test_broker_restart_ingest_reconnects_and_resumes(stack: Stack, tmp_path: Path) -> None:
    """After the broker restarts, ingest reconnects by itself and stores new messages."""
    pw = provision(stack, "s6", "h06", {"pir-h06": "multisensor"})
    async with running_ingest(ingest_settings(stack, tmp_path)) as ing:
        async with device_client(stack, "pir-h06", pw["pir-h06"]) as c:
            for seq in range(1, 11):
                await c.publish(T.telemetry("s6", "pir-h06"),
                                encode_telemetry(env(seq), {"temperature_c": 20}), qos=1)
            await eventually(lambda: ing.snapshot().points_written == 10, what="first 10")
        await asyncio.to_thread(stack.mosquitto.kill)
        await eventually(lambda: not ing.snapshot().mqtt_connected, what="ingest to notice")
        await asyncio.to_thread(stack.mosquitto.start)
        await eventually(lambda: ing.snapshot().mqtt_connected, 40, "ingest to reconnect")
        async with device_client(stack, "pir-h06", pw["pir-h06"]) as c:
            for seq in range(11, 21):
                await c.publish(T.telemetry("s6", "pir-h06"),
                                encode_telemetry(env(seq), {"temperature_c": 20}), qos=1)
            await eventually(lambda: ing.snapshot().points_written == 20, what="next 10")
    assert count(stack, "SELECT count(temperature_c) FROM reading WHERE site='s6'") == 20
