"""Malformed frames, packet ids, clean close and keepalive, without a broker.

Mosquitto never sends these bytes, so the protocol object is fed directly or through a
raw loopback peer (tests/mqtt/wire.py).
"""

from __future__ import annotations

import asyncio

import pytest

from dolbom.mqtt import ConnectionLost, ProtocolError, TooManyInFlight
from dolbom.mqtt.client import MAX_PID
from tests.mqtt.wire import PINGRESP, connected_to_peer, wired

MALFORMED = [
    pytest.param(b"\x30\x00", id="publish-empty"),
    pytest.param(b"\x30\x01\x00", id="publish-half-topic-length"),
    pytest.param(b"\x30\x03\x00\x05a", id="publish-topic-longer-than-body"),
    pytest.param(b"\x32\x03\x00\x01a", id="publish-qos1-without-pid"),
    pytest.param(b"\x32\x04\x00\x01a\x00", id="publish-qos1-half-pid"),
    pytest.param(b"\x36\x05\x00\x01a\x00\x01", id="publish-qos3"),
    pytest.param(b"\x40\x00", id="puback-empty"),
    pytest.param(b"\x40\x01\x00", id="puback-1-byte"),
    pytest.param(b"\x40\x03\x00\x01\x00", id="puback-3-bytes"),
    pytest.param(b"\x90\x01\x00", id="suback-1-byte"),
    pytest.param(b"\xb0\x00", id="unsuback-empty"),
    pytest.param(b"\x20\x00", id="connack-empty"),
    pytest.param(b"\x20\x01\x00", id="connack-1-byte"),
    pytest.param(b"\x30\xff\xff\xff\xff\x01", id="remaining-length-5-bytes"),
    pytest.param(b"\x00\x00", id="reserved-type-0"),
    pytest.param(b"\x10\x00", id="connect-from-server"),
]


@pytest.mark.parametrize("frame", MALFORMED)
async def test_malformed_frame_is_a_protocol_error_that_closes(frame: bytes) -> None:
    """Each short or malformed frame ends the connection with ProtocolError, nothing else."""
    c, proto, t = wired()
    proto.data_received(frame)
    assert t.closed and not c.connected
    assert c._closed is not None
    assert isinstance(c._closed.exception(), ProtocolError)


async def test_malformed_frame_over_tcp_raises_protocol_error_and_closes_socket() -> None:
    """Over a real socket, a truncated PUBLISH ends messages() with ProtocolError and
    the peer sees the connection closed (not an error logged by asyncio's transport)."""
    c, peer = await connected_to_peer(keepalive=0)
    with peer:
        peer.sendall(b"\x32\x03\x00\x01a")
        with pytest.raises(ProtocolError):
            async with asyncio.timeout(5):
                async for _ in c.messages():
                    pass
        assert peer.recv(16) == b""  # closed by the client


async def test_a_close_is_clean_only_after_disconnect() -> None:
    """Whether the end is clean is a flag set by disconnect(), not the error's text."""
    c, _, _ = wired()
    c._fail(ConnectionLost("disconnected"))  # same text, but nobody called disconnect()
    with pytest.raises(ConnectionLost):
        await c.wait_closed()
    d, _, t = wired()
    await d.disconnect()
    await d.wait_closed()  # clean: returns
    assert t.written.endswith(b"\xe0\x00")


def _pid(t_written: bytearray) -> int:
    # publish_nowait("t", b"", 1): the frame ends with the packet id
    return (t_written[-2] << 8) | t_written[-1]


async def test_packet_ids_in_flight_are_never_reused() -> None:
    """An unacknowledged QoS 1 publish keeps its id through a full cycle of 65535 others."""
    c, proto, t = wired()
    first = c.publish_nowait("t", b"", qos=1)
    assert first is not None
    held = _pid(t.written)
    seen = set()
    for _ in range(MAX_PID):
        fut = c.publish_nowait("t", b"", qos=1)
        pid = _pid(t.written)
        assert pid != held
        seen.add(pid)
        proto.data_received(b"\x40\x02" + pid.to_bytes(2, "big"))  # PUBACK
        assert fut is not None and fut.done()
    assert not first.done()  # no PUBACK of another message settled it
    assert len(seen) == MAX_PID - 1
    proto.data_received(b"\x40\x02" + held.to_bytes(2, "big"))
    assert first.done()


async def test_a_timed_out_request_keeps_its_id_until_its_late_ack() -> None:
    """A publish that timed out may still be acked: its id stays busy until then."""
    c, proto, t = wired()
    with pytest.raises(ConnectionLost):
        await c.publish("t", b"", qos=1, timeout=0)
    late = _pid(t.written)
    for _ in range(MAX_PID):
        fut = c.publish_nowait("t", b"", qos=1)
        pid = _pid(t.written)
        assert pid != late
        proto.data_received(b"\x40\x02" + pid.to_bytes(2, "big"))
        assert fut is not None and fut.done()
    assert late in c._pending
    proto.data_received(b"\x40\x02" + late.to_bytes(2, "big"))  # the late PUBACK
    assert late not in c._pending and c.connected  # free again, nothing settled twice


async def test_all_ids_busy_raises_for_nowait_and_waits_for_publish() -> None:
    """With 65535 publishes unacked, publish_nowait raises TooManyInFlight and publish
    waits for a free id, then uses it."""
    c, proto, t = wired()
    for _ in range(MAX_PID):
        c.publish_nowait("t", b"", qos=1)
    with pytest.raises(TooManyInFlight):
        c.publish_nowait("t", b"", qos=1)
    with pytest.raises(TooManyInFlight):
        await c.publish("t", b"", qos=1, timeout=0)
    waiting = asyncio.create_task(c.publish("t", b"", qos=1, timeout=5))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    proto.data_received(b"\x40\x02\x00\x07")  # PUBACK 7: one id frees up
    for _ in range(5):
        await asyncio.sleep(0)
    assert _pid(t.written) == 7
    proto.data_received(b"\x40\x02\x00\x07")
    await asyncio.wait_for(waiting, 5)


async def test_keepalive_reads_what_arrived_during_a_stall_before_judging() -> None:
    """After the loop stalled past 1.5 x keepalive, the due keepalive check runs first, yet
    the broker's bytes already in the socket keep the connection."""
    c, peer = await connected_to_peer(keepalive=10)
    with peer:
        assert c._ping_handle is not None
        c._ping_handle.cancel()
        peer.sendall(PINGRESP)  # arrives while the loop is stalled: unread in our socket
        c._last_rx -= 100  # the stall: the last byte read is 100 s old (moved clock)
        c._keepalive_tick()  # the timer that was already due when the stall began
        for _ in range(20):  # a few loop iterations: the socket is polled, the check re-run
            await asyncio.sleep(0)
        assert c.connected
        assert not c._keepalive_suspect
        assert peer.recv(16) == b"\xc0\x00"  # and the regular PINGREQ went out
        await c.disconnect()


async def test_keepalive_still_drops_a_silent_broker() -> None:
    """A broker that sent nothing is dropped for keepalive after the extra read."""
    c, peer = await connected_to_peer(keepalive=10)
    with peer:
        assert c._ping_handle is not None
        c._ping_handle.cancel()
        c._last_rx -= 100
        c._keepalive_tick()
        for _ in range(20):
            await asyncio.sleep(0)
            if not c.connected:
                break
        with pytest.raises(ConnectionLost, match="keepalive"):
            await c.wait_closed()


async def test_keepalive_does_not_count_silence_while_reading_is_paused() -> None:
    """While the caller pauses reading (its backlog), unread data is not broker silence:
    the check pings instead of dropping, and resuming gives a full window."""
    c, _, t = wired(keepalive=10)
    loop = asyncio.get_running_loop()
    c.pause_reading("backlog")
    c._last_rx -= 100  # paused for 100 s (moved clock)
    c._keepalive_tick()
    assert c.connected and t.written.endswith(b"\xc0\x00")
    c.resume_reading("backlog")
    assert loop.time() - c._last_rx < 1
    c._keepalive_tick()
    assert c.connected
    assert c._ping_handle is not None
    c._ping_handle.cancel()
