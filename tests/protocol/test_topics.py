"""Topic build/parse of wire contract v1 (DESIGN.md §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dolbom.protocol import Kind, Topic, Topics, check_id

T = Topics()


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("care/v1/s1/esp32-a1b2c3/status", Topic(Kind.STATUS, "s1", "esp32-a1b2c3")),
        ("care/v1/s1/d1/event/button", Topic(Kind.EVENT, "s1", "d1", "button")),
        ("care/v1/s1/d1/telemetry", Topic(Kind.TELEMETRY, "s1", "d1")),
        ("care/v1/s1/d1/ack", Topic(Kind.ACK, "s1", "d1")),
        ("care/v1/s1/d1/cmd/ping", Topic(Kind.CMD, "s1", "d1", "ping")),
        ("care/v1/s1/gw/pi-01/status", Topic(Kind.GATEWAY_STATUS, "s1", "pi-01")),
        ("care/v1/s1/d1/event", None),
        ("care/v1/s1/d1/telemetry/x", None),
        ("care/v1/S1/d1/status", None),  # upper case is not an id
        ("care/v1/s1/d 1/status", None),
        ("care/v2/s1/d1/status", None),
        ("care/v1/s1/gw/status", None),
        ("care/v1/s1/d1/event/Fall", None),
        ("care/v1/s1/d1/status/", None),
        ("", None),
    ],
)
def test_parse_table(topic: str, expected: Topic | None) -> None:
    """Every v1 topic shape parses to the right kind; anything else is refused."""
    assert T.parse(topic) == expected


ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,47}\Z").filter(lambda s: s != "gw")


@given(site=ids, dev=ids, name=ids)
def test_build_parse_round_trip(site: str, dev: str, name: str) -> None:
    """What we build, we parse back to the same ids."""
    assert T.parse(T.status(site, dev)) == Topic(Kind.STATUS, site, dev)
    assert T.parse(T.event(site, dev, name)) == Topic(Kind.EVENT, site, dev, name)
    assert T.parse(T.telemetry(site, dev)) == Topic(Kind.TELEMETRY, site, dev)
    assert T.parse(T.cmd(site, dev, name)) == Topic(Kind.CMD, site, dev, name)
    assert T.parse(T.gateway_status(site, dev)) == Topic(Kind.GATEWAY_STATUS, site, dev)


@given(st.text(max_size=80))
def test_parse_never_raises(topic: str) -> None:
    """Arbitrary topic strings are either parsed or refused, never an exception."""
    T.parse(topic)


def test_custom_prefix() -> None:
    """The prefix is configurable and foreign prefixes are refused."""
    t = Topics("org/care/v1/")
    assert t.status("s", "d") == "org/care/v1/s/d/status"
    assert t.parse("org/care/v1/s/d/status") == Topic(Kind.STATUS, "s", "d")
    assert t.parse("care/v1/s/d/status") is None
    with pytest.raises(ValueError, match="not valid"):
        Topics("care/#")


@pytest.mark.parametrize("bad", ["", "A", "-x", "x" * 49, "gw", "a/b", "a+b", "é"])
def test_check_id_refuses(bad: str) -> None:
    """Ids that could break topics or tags are refused with a reason."""
    with pytest.raises(ValueError, match="reserved" if bad == "gw" else "not valid"):
        check_id(bad, "device")


_SEGMENTS = st.one_of(
    st.sampled_from(["care", "v1", "s1", "d1", "gw", "event", "cmd", "status", "telemetry",
                     "ack", "button", "config", "", "a" * 48, "a" * 49, "D1", "d\n", "d_-9"]),
    st.text(alphabet="az09_-/\n é+#", max_size=8),
)


@given(st.lists(_SEGMENTS, min_size=0, max_size=8), st.sampled_from(["care/v1", "x", "a/b.c"]))
def test_parse_shortcut_agrees_with_the_general_parse(segments: list[str], prefix: str) -> None:
    """The shortcut for the common uplink topics gives exactly the general parse's answer."""
    topics = Topics(prefix)
    for topic in ("/".join(segments), prefix + "/" + "/".join(segments)):
        assert topics.parse(topic) == topics.parse_general(topic)


def test_parse_shortcut_leaves_gateway_and_command_topics_to_the_general_parse() -> None:
    assert T.parse("care/v1/s1/gw/event/button") is None
    assert T.parse("care/v1/s1/gw/status") is None
    assert T.parse("care/v1/s1/gw/g1/status") == Topic(Kind.GATEWAY_STATUS, "s1", "g1")
    assert T.parse("care/v1/s1/d1/cmd/ping") == Topic(Kind.CMD, "s1", "d1", "ping")
    assert T.parse("care/v1/s1/d1/event/button\n") is None
