"""Oversize payloads (TESTPLAN I-04): one device sending a message far beyond what the
contract allows never hurts anyone else, and a life-safety topic still raises its alarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from dolbom.mqtt import MqttError
from dolbom.protocol import encode_telemetry
from dolbom.protocol.messages import MAX_PAYLOAD, Sample, encode_batch
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.mosquitto import MAX_PACKET_SIZE
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS


def padded(size: int) -> bytes:
    """A contract envelope padded to a payload of ``size`` bytes."""
    head, tail = b'{"v":1,"boot":1,"seq":1,"ts":1,"tq":2,"pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


# Over the contract's 64 KiB, under the broker's packet limit: reaches ingest.
BIG = padded(100_000)


def largest_batch(seq: int) -> tuple[bytes, int]:
    """The contract's largest kind of message: a telemetry batch of 5-minute samples as
    long as MAX_PAYLOAD allows. Returns (payload, number of samples)."""
    e = chaos.env(seq)
    samples: list[Sample] = []
    payload = b""
    while True:
        sample = Sample(e.ts - (len(samples) + 1) * 300_000,
                        {"temperature_c": 21.25, "humidity_pct": 45.5, "battery_pct": 88})
        longer = encode_batch(e, [*samples, sample])
        if len(longer) > MAX_PAYLOAD:
            return payload, len(samples)
        samples.append(sample)
        payload = longer


def count(stack: Stack, site: str) -> int:
    return stack.influx_admin().count(
        f"SELECT count(temperature_c) FROM reading WHERE site='{site}'", "care")  # noqa: S608


async def test_payloads_over_the_contract_are_dead_letters_and_a_big_button_still_alarms(
        stack: Stack, tmp_path: Path) -> None:
    """Under the broker's packet limit but over the contract's 64 KiB, a 100 KB telemetry
    message is a `too_large` dead letter and a 100 KB button press still reaches both
    people; the sender's next reading and its neighbour's readings are all stored."""
    assert MAX_PAYLOAD < len(BIG) < MAX_PACKET_SIZE
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
                    await big.publish(chaos.TOPICS.telemetry("i4", "ms-i4"), BIG, qos=1)
                    await btn.publish(chaos.TOPICS.event("i4", "btn-i4", "button"), BIG, qos=1)
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
    """With the stack's broker at its default `max_packet_size` (TESTPLAN I-04), a device
    sending a 1 MB message is disconnected by the broker; another device publishing at
    the same time loses nothing, and the contract's largest message still passes."""
    conf = (stack.mosquitto.dir / "mosquitto.conf").read_text()
    assert f"\nmax_packet_size {MAX_PACKET_SIZE}\n" in conf
    batch, samples = largest_batch(1)
    assert len(batch) > MAX_PAYLOAD - 100 and samples > 500
    pw = chaos.care_home(stack, "i5", "hi5", {"ms-i5": "multisensor", "ms2-i5": "multisensor"},
                         "http://127.0.0.1:9/")
    async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
            chaos.device_client(stack, "ms2-i5", pw["ms2-i5"]) as other:
        async with chaos.device_client(stack, "ms-i5", pw["ms-i5"]) as big:
            for seq in range(1, 11):
                await other.publish(chaos.TOPICS.telemetry("i5", "ms2-i5"),
                                    encode_telemetry(chaos.env(seq), {"temperature_c": 20}), qos=1)
                if seq == 3:  # the contract's largest: through the broker to ingest
                    await big.publish(chaos.TOPICS.telemetry("i5", "ms-i5"), batch, qos=1)
                if seq == 5:
                    big.publish_nowait(chaos.TOPICS.telemetry("i5", "ms-i5"),
                                       padded(1_000_000), qos=1)
            with pytest.raises(MqttError):
                await big.wait_closed()
        await chaos.eventually(lambda: count(stack, "i5") == 10 + samples, 15, "stored",
                               ing.snapshot)
        assert ing.snapshot().dead_letters == 0  # the 1 MB message never got through
