"""Reading MQTT frames off the socket: the ``asyncio.Protocol`` of a ``Client``.

Each TCP read is parsed in one pass into whole frames (fixed header, 1-4 bytes of
remaining length, body); a frame cut by the read waits for the rest. Frames are handed
to the client in slices so that a flood cannot hold the event loop. Malformed input
ends the connection with ``ProtocolError`` and never escapes the callback.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol

from dolbom.mqtt.errors import ConnectionLost, MqttError, ProtocolError


class FrameSink(Protocol):
    """What the reader needs of its client (``dolbom.mqtt.client.Client``): the socket it
    shares, the reading pauses and keepalive clock, and where frames and failures go."""

    _transport: asyncio.Transport | None
    _pause_reasons: set[str]
    _last_rx: float
    _can_write: asyncio.Event

    def _dispatch(self, header: int, body: bytes) -> None: ...

    def _fail(self, exc: MqttError) -> None: ...

    def pause_reading(self, reason: str) -> None: ...

    def resume_reading(self, reason: str) -> None: ...

# Frames dispatched per event-loop callback (see FrameReader._dispatch_buffer).
FRAMES_PER_SLICE = 256


class FrameReader(asyncio.Protocol):
    """The client's side of the socket: splits what arrives into frames and hands each
    to ``Client._dispatch``, at most FRAMES_PER_SLICE per event-loop callback."""

    def __init__(self, client: FrameSink) -> None:
        self.client = client
        self.buf = bytearray()
        self._sliced = False  # a continuation of the buffer is scheduled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client._transport = transport  # type: ignore[assignment]
        self.client._pause_reasons.clear()  # a new connection starts reading

    def data_received(self, data: bytes) -> None:
        # Keepalive measures silence from when bytes were read, not when a whole frame
        # was dispatched: a slice or a large frame still in transit is not silence.
        self.client._last_rx = asyncio.get_running_loop().time()
        self.buf += data
        if not self._sliced:  # else the scheduled continuation takes it
            self._dispatch_buffer()

    def _continue(self) -> None:
        self._sliced = False
        if self.client._transport is None or self.client._transport.is_closing():
            return
        self._dispatch_buffer()
        if not self._sliced:
            self.client.resume_reading("slice")

    def _dispatch_buffer(self) -> None:
        """Dispatch the complete frames in the buffer, at most FRAMES_PER_SLICE at a time.

        One socket read can hold thousands of messages; dispatching them all in one go
        would hold the event loop for as long, and with it every other connection of the
        process (the alerts service's life-safety session shares a loop with its
        stream). The rest waits, reading paused, until the loop has run other callbacks.
        """
        buf = self.buf
        pos = 0
        end = len(buf)
        client = self.client
        frames = 0
        try:
            while end - pos >= 2:
                if frames == FRAMES_PER_SLICE:
                    self._sliced = True
                    client.pause_reading("slice")
                    asyncio.get_running_loop().call_soon(self._continue)
                    break
                frames += 1
                header = buf[pos]
                i = pos + 1
                length = shift = 0
                complete = False
                while i < end:  # remaining length: 1-4 bytes of 7 bits
                    b = buf[i]
                    i += 1
                    length |= (b & 0x7F) << shift
                    if not b & 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("malformed remaining length")
                if not complete or end - i < length:
                    break  # wait for the rest of the frame
                client._dispatch(header, bytes(buf[i : i + length]))
                pos = i + length
        except MqttError as e:
            client._fail(e)
            return
        except (IndexError, ValueError, struct.error) as e:
            # A frame too short for its type: bad input from the network never escapes
            # the protocol callback; it ends the connection like any protocol error.
            client._fail(ProtocolError(f"malformed packet: {e}"))
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._fail(ConnectionLost(f"connection lost: {exc or 'closed by broker'}"))

    def pause_writing(self) -> None:
        self.client._can_write.clear()

    def resume_writing(self) -> None:
        self.client._can_write.set()
