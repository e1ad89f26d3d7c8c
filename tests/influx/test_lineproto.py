"""``line``: one point from measurement, tags, fields and time, parsed back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dolbom.influx.lineproto import line
from tests.influx.lineproto import parse_line

NASTY = st.text(alphabet=st.sampled_from(list('a\n\r\t ,"=\\\'x#{}\x00\u00e9돌')), min_size=1,
                max_size=20)


@pytest.mark.parametrize(("fields", "text"), [
    ({"v": 20.5}, "v=20.5"),
    ({"v": 20.0}, "v=20.0"),  # a float stays a float
    ({"n": 3}, "n=3i"),
    ({"ok": True, "no": False}, "ok=true,no=false"),
    ({"s": 'say "hi"'}, 's="say \\"hi\\""'),
])
def test_field_types(fields: dict[str, float | int | bool | str], text: str) -> None:
    """Each field is written by its Python type (float, integer, boolean, string)."""
    assert line("m", {"site": "s1"}, fields, 7) == f"m,site=s1 {text} 7".encode()


@given(site=NASTY, val=NASTY)
def test_hostile_values_stay_one_point_with_its_own_tags(site: str, val: str) -> None:
    """No tag or string field value splits the point or adds a tag."""
    meas, tags, fields, ts = parse_line(line("event", {"site": site, "device": "d1"},
                                             {"val": val, "seq": 1}, 5).decode())
    assert (meas, set(tags), tags["device"], fields["seq"], ts) == (
        "event", {"site", "device"}, "d1", 1, 5)
