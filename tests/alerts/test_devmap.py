"""The device → home map of the stream path and of life-safety routing, and the packed
device ids of a home configuration it relies on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from dolbom.alerts.devmap import DeviceMap
from dolbom.alerts.engine import DeviceInfo, HomeConfig, Seen, initial_state, observe
from dolbom.alerts.model import Thresholds


def _home(home: str, devices: Sequence[str]) -> HomeConfig:
    return HomeConfig("s1", home, "normal", Thresholds(),
                      tuple(DeviceInfo(d, "multisensor", "mains", 60) for d in devices))


FLEET = {f"h{i}": [f"ms-{i}", f"door-{i}", f"btn-{i}"] for i in range(50)}


def _fleet(fleet: dict[str, list[str]] = FLEET) -> list[HomeConfig]:
    return [_home(h, devs) for h, devs in fleet.items()]


def _expected(fleet: dict[str, list[str]] = FLEET) -> dict[str, str]:
    return {d: h for h, devs in fleet.items() for d in devs}


def test_home_config_finds_its_devices_in_one_string() -> None:
    """index() gives each device's position (the state's record order), -1 for others."""
    cfg = _home("h1", ["ms-1", "door-1", "ms-10", "btn-1"])
    assert cfg.ids == ("ms-1", "door-1", "ms-10", "btn-1")
    assert [cfg.index(d) for d in cfg.ids] == [0, 1, 2, 3]
    assert [cfg.has(d) for d in cfg.ids] == [True] * 4
    for other in ("ms-", "s-1", "ms-100", "door", "", "ms-1\ndoor-1", "\n"):
        assert cfg.index(other) == -1 and not cfg.has(other), other
    assert _home("h2", []).ids == () and _home("h2", []).index("x") == -1


def test_the_engine_hears_only_the_homes_own_devices() -> None:
    """A heartbeat from a device of the home moves its record; one from a name that only
    looks like part of the packed ids ("ms-1\\ndoor-1", "s-1") changes nothing."""
    cfg = _home("h1", ["ms-1", "door-1", "btn-1"])
    st = initial_state(cfg, 1_000)
    for other in ("ms-1\ndoor-1", "s-1", "door-", "ms-10", ""):
        assert observe(cfg, st, Seen(other, 2_000)) == (st, [])
    heard, acts = observe(cfg, st, Seen("door-1", 2_000))
    assert acts == [] and [heard.view().seen(i) for i in range(3)] == [1_000, 2_000, 1_000]


@pytest.mark.parametrize("bad", ["", "a\nb"])
def test_home_config_refuses_ids_that_cannot_be_packed(bad: str) -> None:
    """An empty id, or one with the separator in it, is refused when the home is built."""
    with pytest.raises(ValueError, match="line break"):
        _home("h1", ["ms-1", bad])


def test_every_device_maps_to_its_home_and_others_to_none() -> None:
    """Hits give the home id (the configuration's own object), misses None or KeyError."""
    homes = _fleet()
    m = DeviceMap(homes)
    for cfg in homes:
        for d in cfg.ids:
            assert m.get(d) is cfg.home and m[d] is cfg.home and m.config(d) is cfg
            assert m.get((d + ".")[:-1]) is cfg.home  # an equal str, not the same object
    for unknown in ("ms-50", "ms", "h1", "", "ms-1\ndoor-1", "x" * 100):
        assert m.get(unknown) is None and m.config(unknown) is None and unknown not in m
        assert m.get(unknown, "none") == "none"
        with pytest.raises(KeyError):
            m[unknown]
    assert len(m) == 150 and dict(m) == _expected() and sorted(m) == sorted(_expected())


def test_an_empty_map_finds_nothing() -> None:
    """No homes (a service before its first registry read): every lookup misses."""
    m = DeviceMap()
    assert len(m) == 0 and m.get("ms-1") is None and list(m) == []


@pytest.mark.parametrize("hash_fn", [
    lambda d: 0,  # every device collides: one long probe run
    len,  # a few groups of equal hashes
    lambda d: -len(d) * 7919,  # negative hashes
    lambda d: 2**62 + len(d),  # hashes far beyond the table size
], ids=["all-equal", "by-length", "negative", "large"])
def test_colliding_hashes_still_reach_the_right_home(hash_fn: Callable[[str], int]) -> None:
    """The table stores no key: each candidate home is asked, so equal hashes and
    colliding slots resolve to the device's own home, and misses end at an empty slot."""
    homes = _fleet()
    m = DeviceMap(homes, hash_fn=hash_fn)
    assert dict(m) == _expected()
    assert all(m.config(d) is cfg for cfg in homes for d in cfg.ids)
    assert m.get("ms-50") is None and m.get("") is None


def test_a_registry_change_builds_a_new_table() -> None:
    """A device added, removed or moved to another home: the new map follows it (and
    the old one, still in use until the swap, is unchanged)."""
    old = DeviceMap(_fleet())
    fleet = {h: list(devs) for h, devs in FLEET.items()}
    fleet["h1"].append("plug-1")  # added
    fleet["h2"].remove("btn-2")  # removed
    fleet["h3"].remove("door-3")  # moved to h4
    fleet["h4"].append("door-3")
    fleet["h50"] = ["ms-50"]  # a new home
    new = DeviceMap(_fleet(fleet), previous=old)
    assert dict(new) == _expected(fleet)
    assert new.get("plug-1") == "h1" and new.get("btn-2") is None
    assert new.get("door-3") == "h4" and new.get("ms-50") == "h50"
    assert dict(old) == _expected() and old.get("door-3") == "h3"


def test_unchanged_devices_reuse_the_table_with_the_new_configurations() -> None:
    """A re-read where homes changed but not their devices (a mode): no new hashing,
    and lookups give the new configurations."""
    old = DeviceMap(_fleet())
    homes = _fleet()
    homes[5] = HomeConfig("s1", "h5", "away", Thresholds(), homes[5].devices)
    new = DeviceMap(homes, previous=old)
    assert new._table is old._table and new.config("ms-5") is homes[5]
    assert DeviceMap(homes[::-1], previous=old)._table is not old._table  # other order
