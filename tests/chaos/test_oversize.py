"""Oversize payloads (TESTPLAN I-04): one device sending a message far beyond what the
contract allows never hurts anyone else, and a life-safety topic still raises its alarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from dolbom.mqtt import MqttError
from dolbom.protocol import encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS
MB = b'{"v":1,"boot":1,"seq":1,"ts":1,"tq":2,"pad":"' + b"x" * 1_000_000 + b'"}'


def count(stack: Stack, site: str) -> int:
    return stack.influx_admin().count(
        f"SELECT count(temperature_c) FROM reading WHERE site='{site}'", "care")  # noqa: S608


async def test_megabyte_payloads_are_dead_letters_and_a_big_button_still_alarms(
        stack: Stack, tmp_path: Path) -> None:
    """On the stack's broker (no packet limit of its own), a 1 MB telemetry message is a
    `too_large` dead letter and a 1 MB button press still reaches both people; the
    sender's next reading and its neighbour's readings are all stored."""
    async with chaos.webhook_receiver() as rec:
        devs = {"ms-i4": "multisensor", "btn-i4": "button", "ms2-i4": "multisensor"}
        pw = chaos.care_home(stack, "i4", "hi4", devs, rec.url)
        async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
                chaos.running_alerts(chaos.alerts_settings(stack), chaos.Clock()), \
                chaos.device_client(stack, "ms-i4", pw["ms-i4"]) as big, \
                chaos.device_client(stack, "btn-i4", pw["btn-i4"]) as btn, \
                chaos.device_client(stack, "ms2-i4", pw["ms2-i4"]) as other:
            for seq in range(1, 11):
                await other.publish(chaos.TOPICS.telemetry("i4", "ms2-i4"),
                                    encode_telemetry(chaos.env(seq), {"temperature_c": 20}), qos=1)
                if seq == 5:
                    await big.publish(chaos.TOPICS.telemetry("i4", "ms-i4"), MB, qos=1)
                    await btn.publish(chaos.TOPICS.event("i4", "btn-i4", "button"), MB, qos=1)
            await big.publish(chaos.TOPICS.telemetry("i4", "ms-i4"),
                              encode_telemetry(chaos.env(2), {"temperature_c": 21}), qos=1)
            await chaos.eventually(lambda: ing.snapshot().points_written == 11
                                   and ing.snapshot().dead_letters == 2, 15, "stored",
                                   ing.snapshot)
            await chaos.eventually(lambda: len(chaos.told(rec, "button")) == 2, 10, "button told")
        with session_factory(stack.database_url)() as s:
            dead = registry.list_dead_letters(s, limit=10)
            assert sorted((d.device, d.reason) for d in dead) == [
                ("btn-i4", "too_large"), ("ms-i4", "too_large")]
        assert count(stack, "i4") == 11
        assert chaos.told(rec, "button") == [("responder", "btn-i4"), ("worker", "btn-i4")]


async def test_broker_packet_limit_disconnects_only_the_sender(
        stack: Stack, tmp_path: Path) -> None:
    """With the broker's `max_packet_size` at 16 KB (TESTPLAN I-04), a device sending
    20 KB is disconnected by the broker; another device publishing at the same time
    loses nothing."""
    conf = stack.mosquitto.dir / "mosquitto.conf"
    stack.mosquitto.stop()
    conf.write_text(conf.read_text() + "max_packet_size 16384\n")
    stack.mosquitto.start()
    pw = chaos.care_home(stack, "i5", "hi5", {"ms-i5": "multisensor", "ms2-i5": "multisensor"},
                         "http://127.0.0.1:9/")
    async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
            chaos.device_client(stack, "ms2-i5", pw["ms2-i5"]) as other:
        async with chaos.device_client(stack, "ms-i5", pw["ms-i5"]) as big:
            for seq in range(1, 11):
                await other.publish(chaos.TOPICS.telemetry("i5", "ms2-i5"),
                                    encode_telemetry(chaos.env(seq), {"temperature_c": 20}), qos=1)
                if seq == 5:
                    big.publish_nowait(chaos.TOPICS.telemetry("i5", "ms-i5"),
                                       b'{"pad":"' + b"x" * 20_000 + b'"}', qos=1)
            with pytest.raises(MqttError):
                await big.wait_closed()
        await chaos.eventually(lambda: ing.snapshot().points_written == 10, 15, "stored",
                               ing.snapshot)
        assert ing.snapshot().dead_letters == 0  # the oversize message never got through
    assert count(stack, "i5") == 10
