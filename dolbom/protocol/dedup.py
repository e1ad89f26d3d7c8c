"""Duplicate detection by ``(dev, boot, seq)`` (DESIGN.md §3).

Devices and gateways re-send a message with the same ``(boot, seq)`` until it
is acknowledged, and MQTT QoS 1 may deliver it more than once, so every
receiver keeps, per device, the highest ``seq`` seen in its current boot plus a
bitmap of the ``WINDOW`` seqs below it. State is one int per device (boot,
high-water mark and bitmap packed together) to keep memory per home small.

A message from an older boot than the one tracked (a gateway replaying backlog
after the device rebooted), or older than the window, is accepted: InfluxDB's
explicit timestamps make a re-stored NTP-timed point idempotent, and alarms
have their own journal.
"""

from __future__ import annotations

WINDOW = 256
_MASK = (1 << WINDOW) - 1
_SEQ_BITS = 64


class Deduper:
    """Remembers recent ``(boot, seq)`` per device; ``seen`` answers and records."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        # device -> boot << (64 + WINDOW) | hwm << WINDOW | bitmap
        self._state: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._state)

    def seen(self, device: str, boot: int, seq: int) -> bool:
        """True if this message was seen before; otherwise record it and return False."""
        packed = self._state.get(device)
        if packed is None:
            self._state[device] = self._pack(boot, seq, 1)
            return False
        cur_boot = packed >> (_SEQ_BITS + WINDOW)
        hwm = (packed >> WINDOW) & ((1 << _SEQ_BITS) - 1)
        bitmap = packed & _MASK
        if boot > cur_boot:
            self._state[device] = self._pack(boot, seq, 1)
            return False
        if boot < cur_boot:
            return False
        if seq > hwm:
            shift = seq - hwm
            bitmap = ((bitmap << shift) | 1) & _MASK if shift < WINDOW else 1
            self._state[device] = self._pack(boot, seq, bitmap)
            return False
        back = hwm - seq
        if back >= WINDOW:
            # Older than the window: we cannot tell. A gateway may replay old
            # backlog while the device sends live, so store it: a rare duplicate
            # (idempotent in InfluxDB when device-timed) beats a lost message.
            return False
        bit = 1 << back
        if bitmap & bit:
            return True
        self._state[device] = self._pack(boot, hwm, bitmap | bit)
        return False

    def forget(self, device: str) -> None:
        self._state.pop(device, None)

    @staticmethod
    def _pack(boot: int, hwm: int, bitmap: int) -> int:
        return (boot << (_SEQ_BITS + WINDOW)) | (hwm << WINDOW) | bitmap
