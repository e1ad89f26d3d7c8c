"""What the gateway fsyncs, and when it PUBACKs: an event or a status is on disk (an
fsync'd commit) before its local PUBACK; readings are committed in groups, fsync'd at
most once a second (queue.SYNC_EVERY_MS); the forwarder's publishes go in one write.
Commits are counted through the queue's ``on_commit`` hook, not timed."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from dolbom.gateway import intake as intake_mod
from dolbom.gateway.intake import Intake
from dolbom.gateway.queue import Cls, Item, Queue
from dolbom.mqtt import Client, Received
from dolbom.protocol import Envelope, encode_event, encode_telemetry
from dolbom.protocol.topics import Topics
from dolbom.stack.mosquitto import Mosquitto

T = Topics()
SITE, DEV = "s1", "d1"


def reading(rx_ms: int) -> Item:
    return Item(T.telemetry(SITE, DEV), b"{}", Cls.TELEMETRY, False, rx_ms, True)


def test_queue_fsyncs_all_but_readings_and_readings_once_a_second(tmp_path: Path) -> None:
    """An event (life-safety or not) or a status commits with an fsync; readings alone
    commit without one, unless the last fsync'd reading is a second old (receive times)
    or the clock went back; deletes of forwarded rows are never fsync'd. What was
    committed without an fsync is in the file all the same."""
    commits: list[bool] = []
    q = Queue(tmp_path / "q.sqlite", 1000, 10**6, on_commit=commits.append)
    q.put_many([reading(0)])  # the first since the start
    q.put_many([reading(100), reading(200)])
    q.put_many([reading(999)])
    q.put_many([reading(1000)])  # a second after the last fsync'd one
    q.put_many([reading(1100), Item(T.event(SITE, DEV, "button"), b"{}", Cls.LIFE_SAFETY,
                                    False, 1100, True, DEV, 1, 7)])
    q.put_many([reading(1200)])
    q.put_many([Item(T.status(SITE, DEV), b"{}", Cls.STATUS, True, 1300, True, DEV)])
    q.put_many([Item(T.event(SITE, DEV, "motion"), b"{}", Cls.EVENT, False, 1400, True,
                     DEV, 1, 8)])
    q.put_many([reading(1500)])
    q.put_many([reading(500)])  # the clock went back
    assert commits == [True, False, False, True, True, False, True, True, False, True]
    q.done([r.id for r in q.others_after(0, 3)])
    assert commits[-1] is False
    assert q.count == 12 - 3
    q.close()
    assert Queue(tmp_path / "q.sqlite", 1000, 10**6).count == 9


@pytest.fixture(scope="module")
def broker(make_mosquitto: Callable[[], Mosquitto]) -> Mosquitto:
    b = make_mosquitto()
    passwd = b.dir / "passwd"
    for user in ("dev", "gw"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"{user}-pw"], check=True)
    b.files.acl.write_text("user dev\ntopic write care/#\nuser gw\ntopic read care/#\n")
    subprocess.run(["chown", "mosquitto:", str(passwd), str(b.files.acl)], check=True)
    b.reload()
    return b


@pytest.mark.integration
async def test_an_alarm_is_fsynced_before_its_puback_readings_are_grouped(
        broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real local broker, the readings' linger made an hour long: 20 readings
    (BATCH_MAX here) are one commit, not fsync'd, then one PUBACK write; a button press
    ends the linger of the reading before it, and both are fsync'd before their PUBACK."""
    monkeypatch.setattr(intake_mod, "TELEMETRY_LINGER_S", 3600.0)
    monkeypatch.setattr(intake_mod, "BATCH_MAX", 20)
    log: list[tuple[str, object]] = []
    q = Queue(tmp_path / "q.sqlite", 10_000, 10**7,
              on_commit=lambda fsync: log.append(("commit", fsync)))
    now_ms = 1_760_000_000_000
    q.put_many([reading(now_ms)])  # fsync'd: the next second's readings need none
    log.clear()
    intake = Intake(T, SITE, frozenset({DEV}), [], q, Counter(), live=lambda: True,
                    queued=lambda: None, ms=lambda: now_ms, sleep=asyncio.sleep)

    def deliver(m: Received) -> None:  # as the gateway's session does
        intake.on_message(m, sub)

    sub = Client("127.0.0.1", broker.port, "gw", username="gw", password="gw-pw",
                 clean_session=False, on_message=deliver)
    ack_many = sub.ack_many

    def recorded(msgs: list[Received]) -> None:
        log.append(("puback", [m.topic.rsplit("/", 1)[1] for m in msgs]))
        ack_many(msgs)

    monkeypatch.setattr(sub, "ack_many", recorded)
    pub = Client("127.0.0.1", broker.port, "dev", username="dev", password="dev-pw")

    def tel(seq: int) -> tuple[str, bytes, bool]:
        return (T.telemetry(SITE, DEV),
                encode_telemetry(Envelope(1, seq, now_ms, 2), {"temperature_c": 21.5}), False)

    async with sub, pub:
        await sub.subscribe([(f"{T.prefix}/{SITE}/+/telemetry", 1),
                             (f"{T.prefix}/{SITE}/+/event/+", 1)])
        task = asyncio.create_task(intake.run())
        try:
            await asyncio.gather(*pub.publish_many_nowait([tel(i) for i in range(1, 21)]))
            async with asyncio.timeout(10):
                while len(log) < 2:  # noqa: ASYNC110 - bounded wait for the PUBACK write
                    await asyncio.sleep(0.01)
            assert log == [("commit", False), ("puback", ["telemetry"] * 20)]
            log.clear()
            topic, payload, _ = tel(21)
            await pub.publish(topic, payload, qos=1)  # alone: it would wait an hour
            await pub.publish(T.event(SITE, DEV, "button"),
                              encode_event(Envelope(1, 22, now_ms, 2)), qos=1)
            async with asyncio.timeout(10):
                while len(log) < 2:  # noqa: ASYNC110 - bounded wait for the PUBACK write
                    await asyncio.sleep(0.01)
            assert log == [("commit", True), ("puback", ["telemetry", "button"])]
        finally:
            task.cancel()
    assert q.count == 1 + 22
    q.close()
