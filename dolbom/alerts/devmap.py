"""Device id → home, for the stream path and the life-safety routing, in ~9 B a device.

A ``dict[str, str]`` of 1.8 million device ids (300,000 homes × 6) costs its table
(32 B a device) and a ``str`` object per id (~59 B): over half of the 1 KB per home
of DESIGN.md §7 before any rule state. The home configurations already hold every
device id (``HomeConfig.packed``, one ``str`` per home), so this map keeps only an
open-addressing table of home positions, ``array('i')`` of about twice as many slots
as devices (8 B a device), and the list of configurations they point into.

A device's slot is ``hash(device) % size``, then the next ones (linear probing) up to
an empty slot. The table stores no key: each candidate home is asked whether the
device is its own (``HomeConfig.has``, a ``str`` search), so two devices whose slots
collide, or whose hashes are equal, still go to their own homes. ``hash`` of a ``str``
differs from one process to the next: the map is built in the process that uses it
and never saved. It is built once, off the event loop (``load_homes`` runs in a
worker thread), and never changed: a registry change builds a new one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar, overload

from dolbom.alerts.rules.base import HomeConfig

EMPTY = -1
T = TypeVar("T")


class DeviceMap(Mapping[str, str]):
    """device id → home id, over the device ids of ``homes`` (read-only).

    ``previous``: the map of the last registry read; its table is reused (no new hash
    and probe for 1.8 million devices) when every home still has the same device ids
    at the same position, which is what a re-read usually finds. ``hash_fn`` is for
    tests (collisions on demand).
    """

    __slots__ = ("_configs", "_devices", "_hash", "_size", "_table")
    _configs: list[HomeConfig]  # the homes, at the positions the table holds
    _devices: int
    _hash: Callable[[str], int]
    _size: int
    _table: array[int]  # a position in _configs per slot, or EMPTY

    def __init__(self, homes: Iterable[HomeConfig] = (), *,
                 previous: DeviceMap | None = None,
                 hash_fn: Callable[[str], int] = hash) -> None:
        configs = list(homes)
        self._configs = configs
        self._hash = hash_fn
        if (previous is not None and previous._hash is hash_fn
                and len(previous._configs) == len(configs)
                and all(a.packed == b.packed for a, b in zip(previous._configs, configs,
                                                             strict=True))):
            self._devices, self._size, self._table = (
                previous._devices, previous._size, previous._table)
            return
        n = sum(len(cfg.profile.kinds) for cfg in configs)
        size = 2 * n + 1  # at most half full: a short probe on a hit, and on a miss
        table = array("i", [EMPTY]) * size
        for at, cfg in enumerate(configs):
            for device in cfg.ids:
                slot = hash_fn(device) % size
                while table[slot] != EMPTY:
                    slot = slot + 1 if slot + 1 < size else 0
                table[slot] = at
        self._devices, self._size, self._table = n, size, table

    def config(self, device: str) -> HomeConfig | None:
        """The configuration of ``device``'s home, or None (a device no home has)."""
        if "\n" in device:  # not an id (HomeConfig refuses it), and it would fool the search
            return None
        needle = f"\n{device}\n"  # HomeConfig.has, inline: this runs on every message
        table, configs, size = self._table, self._configs, self._size
        slot = self._hash(device) % size
        while (at := table[slot]) != EMPTY:
            cfg = configs[at]
            if needle in cfg.packed:
                return cfg
            slot = slot + 1 if slot + 1 < size else 0
        return None

    @overload
    def get(self, device: str, /) -> str | None: ...
    @overload
    def get(self, device: str, /, default: str | T) -> str | T: ...

    def get(self, device: str, /, default: object = None) -> object:
        """``device``'s home id, or ``default``: the stream path's lookup."""
        cfg = self.config(device)
        return default if cfg is None else cfg.home

    def __getitem__(self, device: str) -> str:
        cfg = self.config(device)
        if cfg is None:
            raise KeyError(device)
        return cfg.home

    def __contains__(self, device: object) -> bool:
        return isinstance(device, str) and self.config(device) is not None

    def __len__(self) -> int:
        return self._devices

    def __iter__(self) -> Iterator[str]:
        """Every device id, home by home (new ``str`` objects: for the rare paths)."""
        for cfg in self._configs:
            yield from cfg.ids

    def __repr__(self) -> str:
        return f"DeviceMap({self._devices} devices, {len(self._configs)} homes)"
