"""Duplicate detection by ``(dev, boot, seq)`` (DESIGN.md §3).

Devices and gateways re-send a message with the same ``(boot, seq)`` until it
is acknowledged, and MQTT QoS 1 may deliver it more than once, so every
receiver keeps, per device, the highest ``seq`` seen in its current boot plus a
bitmap of the ``WINDOW`` seqs below it. State is one int per device (``check``
reads and returns it; ``Deduper`` keeps them in a dict) to keep memory per home
small.

A message from an older boot than the one tracked (a gateway replaying backlog
after the device rebooted), or older than the window, is accepted: InfluxDB's
explicit timestamps make a re-stored NTP-timed point idempotent, and alarms
have their own journal.

The int packs, from the low bits up: ``run``, how many seqs from the high-water mark
down were all seen (9 bits), the high-water mark and the boot (53 bits each: the
wire contract's integers, ``messages.MAX_INT``), and the rest of the bitmap above the
run. A device that sends in order has no rest, so its state stays under 120 bits
(40 bytes) instead of the bitmap's 256.
"""

from __future__ import annotations

from dolbom.protocol.messages import MAX_INT

WINDOW = 256
_MASK = (1 << WINDOW) - 1
_RUN_BITS = 9  # 0..WINDOW
_RUN_MASK = (1 << _RUN_BITS) - 1
_INT_BITS = 53  # boot and seq are in [0, MAX_INT]
_INT_MASK = (1 << _INT_BITS) - 1
_BOOT_SHIFT = _RUN_BITS + _INT_BITS
_REST_SHIFT = _BOOT_SHIFT + _INT_BITS
_NO_REST = 1 << _REST_SHIFT  # a state below it has no bitmap beyond its run
_ONE_SEQ = 1 << _RUN_BITS  # the high-water mark's unit
assert MAX_INT == _INT_MASK

NEW = 0  # the state of a device not heard from yet
DUPLICATE = -1  # what ``check`` answers for a message seen before


def check(state: int, boot: int, seq: int) -> int:
    """The state once ``(boot, seq)`` is recorded, or ``DUPLICATE`` if it was seen before
    (the state is then unchanged). ``boot`` and ``seq`` in [0, ``MAX_INT``], as decoded."""
    if not state:
        return _pack(boot, seq, 1)
    run = state & _RUN_MASK
    hwm = (state >> _RUN_BITS) & _INT_MASK
    cur_boot = (state >> _BOOT_SHIFT) & _INT_MASK
    if boot != cur_boot:
        return _pack(boot, seq, 1) if boot > cur_boot else state
    if seq == hwm + 1 and state < _NO_REST:
        # the usual case, the next seq: the high-water mark moves up one, the run grows
        return state + _ONE_SEQ + (run < WINDOW)
    bitmap = ((state >> _REST_SHIFT) << run) | ((1 << run) - 1)
    if seq > hwm:
        shift = seq - hwm
        bitmap = ((bitmap << shift) | 1) & _MASK if shift < WINDOW else 1
        return _pack(boot, seq, bitmap)
    back = hwm - seq
    if back >= WINDOW:
        # Older than the window: we cannot tell. A gateway may replay old
        # backlog while the device sends live, so store it: a rare duplicate
        # (idempotent in InfluxDB when device-timed) beats a lost message.
        return state
    bit = 1 << back
    if bitmap & bit:
        return DUPLICATE
    return _pack(boot, hwm, bitmap | bit)


def _pack(boot: int, hwm: int, bitmap: int) -> int:
    run = (~bitmap & (bitmap + 1)).bit_length() - 1  # trailing ones (bit 0 is hwm: set)
    return ((((bitmap >> run) << _INT_BITS | boot) << _INT_BITS | hwm) << _RUN_BITS) | run


class Deduper:
    """Remembers recent ``(boot, seq)`` per device; ``seen`` answers and records."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[str, int] = {}  # device -> its ``check`` state

    def __len__(self) -> int:
        return len(self._state)

    def seen(self, device: str, boot: int, seq: int) -> bool:
        """True if this message was seen before; otherwise record it and return False."""
        if not (0 <= boot <= MAX_INT and 0 <= seq <= MAX_INT):
            raise ValueError(f"boot and seq must be in [0, {MAX_INT}]: {boot}, {seq}")
        state = self._state.get(device, NEW)
        after = check(state, boot, seq)
        if after == DUPLICATE:
            return True
        if after != state:
            self._state[device] = after
        return False

    def forget(self, device: str) -> None:
        self._state.pop(device, None)
