"""The registry's device index as ingest holds it: device → its ``Device``, re-read when a
device was added or revoked.

A ``Device`` is all ingest keeps per device (docs/ingest.md, "Last seen"): its id (the
index's key, the one copy every per-device dict of ingest uses as its key), its home's
``Place`` (site, home and the start of the line-protocol tag set, shared by the home's
devices), and one int holding its duplicate window (``protocol.dedup.check``) and the
last-seen time last written to the registry (``SeenTimes``, ``seen.SeenRecorder.stored``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar, overload

from sqlalchemy.orm import Session, sessionmaker

from dolbom.influx.lineproto import tag
from dolbom.ingest.points import series_tags
from dolbom.protocol.dedup import DUPLICATE, NEW, check
from dolbom.registry import service as registry

log = logging.getLogger("dolbom.ingest")

_T = TypeVar("_T")

# Device.state: the last-seen time last written, in ms (0: none), in the low bits, the
# duplicate window above them. One int, not two: 40 B a device less (an int is 32 B or
# more, and its reference 8).
_SEEN_BITS = 48  # ms since 1970: until the year 10889
_SEEN_MASK = (1 << _SEEN_BITS) - 1


class Place:
    """A device's site and home (None: not assigned to one), and ``tags``, the start of
    its line-protocol tag set: ``site=…,home=…,device=`` (``points.series_tags``)."""

    __slots__ = ("home", "site", "tags")

    def __init__(self, site: str, home: str | None) -> None:
        self.site, self.home = site, home
        self.tags = series_tags(site, home, "")


class Device:
    """One device of the index and what ingest remembers of it."""

    __slots__ = ("id", "place", "state")

    def __init__(self, id: str, place: Place) -> None:
        self.id = id
        self.place = place
        self.state = NEW  # window << _SEEN_BITS | stored

    def duplicate(self, boot: int, seq: int) -> bool:
        """Whether ``(boot, seq)`` came before (``protocol.dedup``); if not, it is now
        recorded."""
        state = self.state
        window = check(state >> _SEEN_BITS, boot, seq)
        if window == DUPLICATE:
            return True
        self.state = window << _SEEN_BITS | (state & _SEEN_MASK)
        return False

    @property
    def window(self) -> int:
        """The duplicate window: ``protocol.dedup.check``'s state."""
        return self.state >> _SEEN_BITS

    @property
    def stored(self) -> int | None:
        """The last-seen time (ms) last written to the registry (None: none yet); it is
        set through ``SeenTimes``, which counts the devices that have one."""
        return (self.state & _SEEN_MASK) or None

    def tags(self) -> str:
        """Its line-protocol tag set, as ``points.series_tags`` makes it: registry ids
        (``^[a-z0-9][a-z0-9_-]{0,47}$``) need no escaping, so the id follows as it is."""
        return self.place.tags + self.id


class _OddDevice(Device):
    """A device whose id would need escaping in line protocol. The registry gives no
    such id; should one come, it is still escaped (the second wall)."""

    __slots__ = ()

    def tags(self) -> str:
        return self.place.tags + tag(self.id)


def new_device(id: str, place: Place) -> Device:
    return Device(id, place) if tag(id) == id else _OddDevice(id, place)


class DeviceIndex:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.index: dict[str, Device] = {}
        self._version: tuple[Any, ...] | None = None
        self.stored_count = 0  # devices of the index with a last-seen time (SeenTimes)
        self._loading = asyncio.Lock()  # one read at a time: each builds on the index before
        self.refresh_wanted = False  # a message came from a device not in the index
        # the shortest heartbeat an active device promised: it bounds how coarse the
        # last-seen times may be (seen.SeenRecorder)
        self.shortest_hb_s: int | None = None
        self.last_refresh = 0.0  # time.monotonic()

    def refresh_due(self) -> bool:
        """A message came from a device not in the index, and the last read is 1 s old."""
        return self.refresh_wanted and time.monotonic() - self.last_refresh >= 1.0

    async def load(self) -> None:
        """Re-read the device index if a device was added or revoked since the last read.
        A device still in it keeps its ``Device`` (its window and last-seen time)."""
        async with self._loading:
            await self._load()

    async def _load(self) -> None:
        known, old = self._version, self.index

        def load() -> tuple[tuple[Any, ...], _Built | None, int | None]:
            with self.sessions() as s:
                version = registry.device_index_version(s)
                if version == known:
                    return version, None, None  # unchanged: no need to rebuild it
                refs, shortest = registry.device_index(s), registry.shortest_heartbeat_s(s)
            return version, _build(refs, old), shortest

        self.last_refresh = time.monotonic()
        self.refresh_wanted = False
        try:
            version, built, shortest = await asyncio.to_thread(load)
        except Exception:
            log.exception("could not read the device registry; keeping the cached one")
            return
        if built is not None:
            index, moved, gone = built
            # here, not in the thread: the hot path sees the move and the new index at once
            for dev, place in moved:
                dev.place = place
            self.stored_count -= sum(1 for dev in gone if dev.stored is not None)
            self.index, self._version = index, version
            self.shortest_hb_s = shortest


# the new index, the devices kept whose site or home changed (and their new place),
# and the devices no longer in it
_Built = tuple[dict[str, Device], list[tuple[Device, Place]], list[Device]]


def _build(refs: dict[str, registry.DeviceRef], old: dict[str, Device]) -> _Built:
    """The index of ``refs`` (the registry's rows), keeping ``old``'s ``Device`` of every
    device still there, with one copy of each string and one ``Place`` per home: the
    database gives every row its own strings (~150 B per device at 300,000 devices)."""
    index: dict[str, Device] = {}
    places: dict[tuple[str, str | None], Place] = {}
    strings: dict[str, str] = {}
    other: list[tuple[str, registry.DeviceRef, Device | None]] = []
    for device, ref in refs.items():
        dev = old.get(device)
        if dev is not None:
            place = dev.place
            if place.site == ref.site and place.home == ref.home:
                index[dev.id] = dev
                if places.setdefault((ref.site, ref.home), place) is place:
                    strings.setdefault(place.site, place.site)
                    if place.home is not None:
                        strings.setdefault(place.home, place.home)
                continue
        other.append((device, ref, dev))
    moved: list[tuple[Device, Place]] = []
    for device, ref, dev in other:  # new devices, and devices that moved
        shared = places.get((ref.site, ref.home))
        if shared is None:
            site, home = ref.site, ref.home
            shared = places[(site, home)] = Place(
                strings.setdefault(site, site),
                None if home is None else strings.setdefault(home, home))
        place = shared
        if dev is None:
            index[device] = new_device(device, place)
        else:
            index[dev.id] = dev
            moved.append((dev, place))
    kept = len(index) - sum(1 for _, _, dev in other if dev is None)
    gone = [] if kept == len(old) else [dev for d, dev in old.items() if d not in refs]
    return index, moved, gone


class SeenTimes(MutableMapping[str, int]):
    """``SeenRecorder.stored`` for the service: the last-seen time last written per
    device, kept in the low bits of the index's ``Device.state`` instead of a dict of its
    own (an int and an entry: 58 B a device). A device not in the index (revoked since it
    was heard) has none and keeps none."""

    __slots__ = ("_devices",)

    def __init__(self, devices: DeviceIndex) -> None:
        self._devices = devices

    def __getitem__(self, device: str) -> int:
        dev = self._devices.index.get(device)
        if dev is None or dev.stored is None:
            raise KeyError(device)
        return dev.stored

    @overload
    def get(self, device: str, /) -> int | None: ...
    @overload
    def get(self, device: str, /, default: int | _T) -> int | _T: ...

    def get(self, device: str, /, default: object = None) -> object:
        # (Device.stored inlined here and below: the flush asks for every device it writes)
        dev = self._devices.index.get(device)
        if dev is not None and (ms := dev.state & _SEEN_MASK):
            return ms
        return default

    def __contains__(self, device: object) -> bool:
        dev = self._devices.index.get(device)  # type: ignore[call-overload]
        return dev is not None and dev.stored is not None

    def __setitem__(self, device: str, ms: int) -> None:
        devices = self._devices
        dev = devices.index.get(device)
        if dev is None:
            return
        if not 0 < ms <= _SEEN_MASK:
            raise ValueError(f"a last-seen time must be in (0, {_SEEN_MASK}] ms, not {ms}")
        state = dev.state
        old = state & _SEEN_MASK
        if not old:
            devices.stored_count += 1
        dev.state = state - old + ms

    def __delitem__(self, device: str) -> None:
        dev = self._devices.index.get(device)
        if dev is None or dev.stored is None:
            raise KeyError(device)
        dev.state = dev.state >> _SEEN_BITS << _SEEN_BITS
        self._devices.stored_count -= 1

    def __iter__(self) -> Iterator[str]:
        return (d for d, dev in self._devices.index.items() if dev.stored is not None)

    def __len__(self) -> int:
        return self._devices.stored_count
