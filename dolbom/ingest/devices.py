"""The registry's device index as ingest holds it: device → (site, home), re-read when a
device was added or revoked, and each device's line-protocol tag set."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dolbom.ingest.points import series_tags
from dolbom.registry import service as registry

log = logging.getLogger("dolbom.ingest")


class DeviceIndex:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.index: dict[str, registry.DeviceRef] = {}
        self._version: tuple[Any, ...] | None = None
        self._tags: dict[str, str] = {}  # device -> its line-protocol tag set
        self.refresh_wanted = False  # a message came from a device not in the index
        # the shortest heartbeat an active device promised: it bounds how coarse the
        # last-seen times may be (seen.SeenRecorder)
        self.shortest_hb_s: int | None = None
        self.last_refresh = 0.0  # time.monotonic()

    def tags(self, device: str, ref: registry.DeviceRef) -> str:
        tags = self._tags.get(device)
        if tags is None:  # escaped once per device (cleared when the index is re-read)
            tags = self._tags[device] = series_tags(ref.site, ref.home, device)
        return tags

    def refresh_due(self) -> bool:
        """A message came from a device not in the index, and the last read is 1 s old."""
        return self.refresh_wanted and time.monotonic() - self.last_refresh >= 1.0

    async def load(self) -> None:
        """Re-read the device index if a device was added or revoked since the last read."""
        known = self._version

        def load() -> tuple[tuple[Any, ...], dict[str, registry.DeviceRef] | None,
                            int | None]:
            with self.sessions() as s:
                version = registry.device_index_version(s)
                if version == known:
                    return version, None, None  # unchanged: no need to rebuild it
                return (version, _shared(registry.device_index(s)),
                        registry.shortest_heartbeat_s(s))

        self.last_refresh = time.monotonic()
        self.refresh_wanted = False
        try:
            version, index, shortest = await asyncio.to_thread(load)
        except Exception:
            log.exception("could not read the device registry; keeping the cached one")
            return
        if index is not None:
            self.index, self._version = index, version
            self.shortest_hb_s = shortest
            self._tags = {}


def _shared(index: dict[str, registry.DeviceRef]) -> dict[str, registry.DeviceRef]:
    """The index with one copy of each string: the database gives every row its own
    site, home and kind strings (~150 B per device at 300,000 devices). Device ids are
    interned, so the id a topic names (``sys.intern`` in intake) is this very object
    wherever ingest keys a dict by device."""
    strings: dict[str, str] = {}
    refs: dict[tuple[str, str | None, str], registry.DeviceRef] = {}
    out: dict[str, registry.DeviceRef] = {}
    for device, ref in index.items():
        key = (ref.site, ref.home, ref.kind)
        shared = refs.get(key)
        if shared is None:
            site, home, kind = key
            shared = refs[key] = registry.DeviceRef(
                strings.setdefault(site, site),
                None if home is None else strings.setdefault(home, home),
                strings.setdefault(kind, kind))
        out[sys.intern(device)] = shared
    return out
