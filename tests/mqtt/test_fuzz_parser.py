"""Property tests of the frame parser: byte streams fed in random chunks to the protocol."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from dolbom.mqtt import Client, ProtocolError, Received, packets
from dolbom.mqtt.reader import FRAMES_PER_SLICE
from tests.mqtt.wire import settle, wired_as


class Recording(Client):
    """Records every frame handed to dispatch, in order."""

    frames: list[tuple[int, bytes]]

    def _dispatch(self, header: int, body: bytes) -> None:
        self.frames.append((header, body))
        super()._dispatch(header, body)


def _frame(header: int, body: bytes) -> bytes:
    return bytes([header]) + packets.remaining_length(len(body)) + body


pids = st.integers(1, 65535)
publishes = st.builds(
    lambda topic, payload, qos, retain, dup, pid: packets.publish(
        topic, payload, qos, retain, pid if qos else 0, dup),
    st.text(max_size=20), st.binary(max_size=300), st.integers(0, 1), st.booleans(),
    st.booleans(), pids)
acks = st.builds(
    lambda kind, pid, codes: _frame(kind, pid.to_bytes(2, "big") + (
        codes if kind == packets.SUBACK else b"")),
    st.sampled_from([packets.PUBACK, packets.SUBACK, packets.UNSUBACK]), pids,
    st.binary(min_size=1, max_size=4))
others = st.sampled_from([b"\xd0\x00", b"\x20\x02\x00\x00", b"\x20\x02\x01\x00"])
valid_frames = st.lists(publishes | acks | others, min_size=1, max_size=40)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


async def _feed(chunks: list[bytes]) -> tuple[list[tuple[int, bytes]], list[Received], bool,
                                               BaseException | None]:
    got: list[Received] = []
    rec, proto, _ = wired_as(Recording, on_message=got.append)
    rec.frames = []
    for chunk in chunks:
        if not rec.connected:
            break
        proto.data_received(chunk)
        await settle(proto)
    exc = None
    if rec._closed is not None and rec._closed.done():
        exc = rec._closed.exception()
    return rec.frames, got, rec.connected, exc


@settings(max_examples=200, deadline=None)
@given(valid_frames, st.lists(st.integers(0, 10**6), max_size=30))
def test_valid_frames_parse_the_same_however_split(frames: list[bytes], cuts: list[int]) -> None:
    """Valid server frames split at arbitrary points parse exactly as when read whole."""
    data = b"".join(frames)
    whole = asyncio.run(_feed([data]))
    split = asyncio.run(_feed(_split(data, cuts)))
    assert whole[2] and split[2]  # still connected
    assert len(whole[0]) == len(frames)
    assert [bytes([h]) + packets.remaining_length(len(b)) + b for h, b in whole[0]] == frames
    assert split[0] == whole[0]
    assert split[1] == whole[1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_ever_close_with_protocol_error(chunks: list[bytes]) -> None:
    """Arbitrary bytes never raise out of the protocol: the connection stays up or ends
    with ProtocolError."""
    _, _, connected, exc = asyncio.run(_feed(chunks))
    assert connected or isinstance(exc, ProtocolError)


@settings(max_examples=50, deadline=None)
@given(st.lists(valid_frames, min_size=1, max_size=3),
       st.binary(min_size=1, max_size=16), st.lists(st.integers(0, 10**6), max_size=10))
def test_garbage_after_valid_frames_keeps_what_came_before(
    before: list[list[bytes]], junk: bytes, cuts: list[int]
) -> None:
    """Frames before the garbage are all dispatched; the garbage closes with ProtocolError
    or waits as an incomplete frame, never another exception."""
    frames = [f for group in before for f in group]
    data = b"".join(frames) + junk
    dispatched, _, connected, exc = asyncio.run(_feed(_split(data, cuts)))
    assert connected or isinstance(exc, ProtocolError)
    assert [bytes([h]) + packets.remaining_length(len(b)) + b
            for h, b in dispatched[: len(frames)]] == frames


def test_more_frames_than_a_slice_are_all_dispatched_in_order() -> None:
    """A buffer of several slices' worth of frames is dispatched whole and in order."""
    n = FRAMES_PER_SLICE * 3 + 5
    data = b"".join(packets.publish("t", b"%d" % i, 1, False, i % 65535 + 1) for i in range(n))
    _, got, connected, _ = asyncio.run(_feed([data]))
    assert connected and [m.payload for m in got] == [b"%d" % i for i in range(n)]
