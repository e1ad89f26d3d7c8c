"""The broker's ACL denials: parsing its real log lines, the sliding window, following
the log, and the alert a device that keeps trying raises (docs/broker.md)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.brokerwatch.watch import DenialMetrics, DenialOptions, DenialWatch
from dolbom.mqtt import Client
from dolbom.registry import service as svc
from dolbom.registry.broker import mosquitto_hash
from dolbom.registry.denials import (
    ClientNames,
    Connected,
    Denial,
    DenialWindows,
    Malformed,
    Report,
    WindowPolicy,
    parse_line,
)
from dolbom.registry.logtail import LogTail
from dolbom.registry.models import Alert
from dolbom.stack.mosquitto import Mosquitto

SECRET = b'{"heart_rate_bpm": 71, "marker": "PAYLOAD-NEVER-LOGGED"}'
EXAMPLE = Path(__file__).parent.parent.parent / "dolbom.example.env"


# -- lines captured from the real broker ------------------------------------------------


async def _spoof(port: int) -> None:
    """What the captured log holds: denials of every shape, and the connections."""
    a = Client("127.0.0.1", port, "a", username="a", password="apw")
    await a.connect(timeout=5)
    await a.publish("care/v1/s1/b/telemetry", SECRET, qos=1)
    await a.publish("care/v1/s1/b/event/button", SECRET, qos=0, retain=True)
    await a.publish("care/v1/s1/a/telemetry", SECRET, qos=1)  # allowed
    await a.disconnect()
    # a client id naming the victim, and one that reads like the rest of the line
    for cid in ("b", "x (d0, q1, r0, m1, 'y"):
        c = Client("127.0.0.1", port, cid, username="a", password="apw")
        await c.connect(timeout=5)
        await c.publish("care/v1/s1/b/te'l, 'z", SECRET, qos=1)
        await c.disconnect()
    # an allowed publisher whose topic reads like a denial of someone else
    f = Client("127.0.0.1", port, "free", username="free", password="fpw")
    await f.connect(timeout=5)
    await f.publish("care/v1/Denied PUBLISH from b (d0, q0, r0, m0, 'x', ... (1 bytes))",
                    b"x", qos=1)
    await f.disconnect()


@pytest.fixture(scope="module")
def captured(runtime_dir: Path) -> Iterator[list[str]]:
    """The log of a real Mosquitto 2.0 that logs denials, after ``_spoof``."""
    broker = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-denials-", dir=runtime_dir)),
                       log_denials=True)
    broker.prepare()
    (broker.dir / "passwd").write_text(
        f"a:{mosquitto_hash('apw')}\nfree:{mosquitto_hash('fpw')}\n")
    (broker.dir / "acl").write_text(
        "user a\ntopic write care/v1/s1/a/telemetry\n\nuser free\ntopic write care/v1/#\n")
    broker.start()
    try:
        asyncio.run(_spoof(broker.port))
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:  # bounded wait for the broker's write
            text = broker.broker_log.read_text(errors="replace")
            if text.count("Denied PUBLISH") >= 4 and "'care/v1/Denied" in text:
                break
            time.sleep(0.05)
        yield text.splitlines()
    finally:
        broker.stop()


def test_real_denials_parse_to_client_topic_and_flags(captured: list[str]) -> None:
    """Every denial the real broker logged parses: client id, topic, QoS, retain, size."""
    denials = [d for d in map(parse_line, captured) if isinstance(d, Denial)]
    assert [(d.client_id, d.topic, d.qos, d.retain, d.size, d.splits) for d in denials] == [
        ("a", "care/v1/s1/b/telemetry", 1, False, len(SECRET), ()),
        ("a", "care/v1/s1/b/event/button", 0, True, len(SECRET), ()),
        ("b", "care/v1/s1/b/te'l, 'z", 1, False, len(SECRET), ()),
        # a client id that reads like the rest of the line: both readings are kept
        ("x", "y (d0, q1, r0, m1, 'care/v1/s1/b/te'l, 'z", 1, False, len(SECRET),
         (("x (d0, q1, r0, m1, 'y", "care/v1/s1/b/te'l, 'z"),)),
    ]
    assert all(d.at is not None and abs(d.at - time.time()) < 600 for d in denials)


def test_the_log_never_holds_a_payload(captured: list[str]) -> None:
    """Denied or delivered, the broker logs a message's size, never its payload."""
    assert not any("PAYLOAD-NEVER-LOGGED" in line for line in captured)
    assert any("Received PUBLISH from a" in line for line in captured)


def test_a_spoofed_client_id_is_blamed_on_its_user(captured: list[str]) -> None:
    """A client naming itself after its victim, or after the rest of a denial line, is
    blamed on the user it logged in as, with the topic it really sent."""
    names = ClientNames(100)
    blamed = []
    for parsed in map(parse_line, captured):
        if isinstance(parsed, Connected):
            names.connected(parsed.client_id, parsed.username)
        elif isinstance(parsed, Denial):
            blamed.append(names.blame(parsed))
    assert blamed == [("a", True, "care/v1/s1/b/telemetry"), ("a", True,
                      "care/v1/s1/b/event/button")] + [("a", True, "care/v1/s1/b/te'l, 'z")] * 2
    assert ClientNames(1).who("b") == ("b", False)  # never saw it connect: its client id


def test_a_topic_that_reads_like_a_denial_is_not_one(captured: list[str]) -> None:
    """An allowed publish whose topic mimics a denial line is neither a denial nor malformed."""
    [line] = [ln for ln in captured if "'care/v1/Denied" in ln]
    assert line.split(": ", 1)[1].startswith("Received PUBLISH from free")
    assert parse_line(line) is None


def _cuts(captured: list[str]) -> list[str]:
    lines = [ln for ln in captured if "Denied PUBLISH" in ln or "New client connected" in ln]
    return [ln[:n] for ln in lines for n in range(len(ln) - 1, len(ln) // 2, -7)]


def test_cut_real_lines_are_malformed_never_an_exception(captured: list[str]) -> None:
    """Every truncation of a real denial or connect line is Malformed (or nothing), never
    a crash or a wrong denial."""
    for cut in _cuts(captured):
        assert parse_line(cut) is None or isinstance(parse_line(cut), Malformed), cut


@pytest.mark.parametrize(("line", "expected"), [
    ("1796362654: Denied PUBLISH from a (d0, q1, r0, m1, 'care/v1/s1/b/telemetry', ... "
     "(12 bytes))", Denial(1796362654.0, "a", "care/v1/s1/b/telemetry", 1, False, 12)),
    ("Denied PUBLISH from a (d0, q0, r1, m0, 't', ... (0 bytes))",
     Denial(None, "a", "t", 0, True, 0)),
    ("2026-12-04T05:34:16: Denied PUBLISH from a (d0, q0, r0, m0, 't', ... (1 bytes))",
     Denial(None, "a", "t", 0, False, 1)),
    ("1796362654: New client connected from 127.0.0.1:43446 as a (p2, c1, k60, u'a').",
     Connected(1796362654.0, "a", "a")),
    ("1: New client connected from [::1]:1 as a (p5, c0, k30).", Connected(1.0, "a", None)),
    ("1: Denied PUBLISH from a (d0, q3, r0, m1, 't', ... (1 bytes))", Malformed("denial")),
    ("1: Denied PUBLISH from ", Malformed("denial")),
    ("1: New client connected from x", Malformed("connect")),
    ("1: Received PUBLISH from a (d0, q1, r0, m1, 't', ... (8 bytes))", None),
    ("", None),
    ("\x00\xff garbage", None),
])
def test_parse_table(line: str, expected: object) -> None:
    """Denials and connections in each stamp style; near misses are Malformed; others None."""
    assert parse_line(line) == expected


def test_a_long_topic_is_cut_for_operators() -> None:
    """A denied topic is kept to 256 characters."""
    d = parse_line(f"Denied PUBLISH from a (d0, q0, r0, m0, '{'t' * 5000}', ... (1 bytes))")
    assert isinstance(d, Denial) and len(d.topic) == 256


# -- the sliding window -----------------------------------------------------------------


def _feed(w: DenialWindows, times: list[float], who: str = "a", topic: str = "t"
          ) -> list[Report | None]:
    return [w.observe(who, topic, t) for t in times]


@pytest.mark.parametrize(("times", "reported_at"), [
    ([0, 1, 2, 3], []),  # four: not yet
    ([0, 1, 2, 3, 4], [4]),  # the fifth within 10 min
    ([0, 200, 400, 600, 800], []),  # five, but never five within 600 s
    ([0, 150, 300, 450, 600], [600]),  # exactly 600 s apart counts
    ([0, 1, 2, 3, 4, 5, 30, 63, 64], [4, 64]),  # then at most once a minute
    ([0, 1, 2, 3, 4, 2000], [4]),  # one more after a quiet window: a new episode, below 5
    ([0, 1, 2, 3, 4, 2000, 2001, 2002, 2003, 2004], [4, 2004]),  # a new episode reported
])
def test_window_reports_at_the_threshold_then_rarely(times: list[float],
                                                    reported_at: list[float]) -> None:
    """≥ 5 within 600 s reports once; repeats at most every 60 s; quiet ends an episode."""
    w = DenialWindows(WindowPolicy(threshold=5, window_s=600, repeat_s=60))
    got = [t for t, r in zip(times, _feed(w, times), strict=True) if r is not None]
    assert got == reported_at


def test_report_counts_and_names_the_topics() -> None:
    """A report says first or repeat, how many in the window and in all, and the topics."""
    w = DenialWindows(WindowPolicy(threshold=3, window_s=600, repeat_s=60, max_topics=2))
    r = [*_feed(w, [10, 11], topic="x"), w.observe("a", "y", 12)]
    assert r[:2] == [None, None]
    assert r[2] == Report("a", True, 3, 3, 10, ("x", "y"))
    w.observe("a", "z", 20)
    assert w.observe("a", "x", 80) == Report("a", False, 3, 5, 10, ("z", "x"))


def test_a_single_denial_never_reports() -> None:
    """One denial per client, for many clients: nobody is reported."""
    w = DenialWindows(WindowPolicy())
    assert all(w.observe(f"d{i}", "t", i) is None for i in range(1000))


def test_memory_is_bounded_by_max_clients() -> None:
    """Past max_clients, the least recently denied are forgotten."""
    w = DenialWindows(WindowPolicy(threshold=2, max_clients=3))
    for who in ("a", "b", "c", "d"):
        w.observe(who, "t", 0)
    assert len(w) == 3
    assert w.observe("a", "t", 1) is None  # "a" was forgotten: its first denial again
    assert w.observe("d", "t", 1) is not None
    names = ClientNames(2)
    for cid in ("a", "b", "c"):
        names.connected(cid, cid.upper())
    assert len(names) == 2 and names.who("a") == ("a", False) and names.who("c") == ("C", True)


# -- following the log --------------------------------------------------------------------


def test_tail_starts_at_the_end_and_returns_whole_lines(tmp_path: Path) -> None:
    """What was there before is skipped; a line is returned only once it is complete."""
    f = tmp_path / "broker.log"
    f.write_bytes(b"old 1\nold 2\n")
    t = LogTail(f)
    assert t.read_lines() == []
    with f.open("ab") as out:
        out.write(b"new 1\nnew ")
        out.flush()
        assert t.read_lines() == [b"new 1"]
        out.write(b"2\n")
    assert t.read_lines() == [b"new 2"]
    assert t.read_lines() == []


def test_tail_follows_rotation_and_truncation(tmp_path: Path) -> None:
    """Rotated: the old file to its end, then the new one from its start; truncated: again
    from the start."""
    f = tmp_path / "broker.log"
    f.write_bytes(b"")
    t = LogTail(f)
    assert t.read_lines() == []
    with f.open("ab") as out:
        out.write(b"a\n")
    f.rename(tmp_path / "broker.log.1")
    with (tmp_path / "broker.log.1").open("ab") as out:
        out.write(b"b\n")  # written after the rename, before the broker reopens
    assert t.read_lines() == [b"a", b"b"]
    assert t.read_lines() == []  # the new file is not there yet
    f.write_bytes(b"c\n")
    assert t.read_lines() == [b"c"] and t.rotations == 1
    f.write_bytes(b"")  # copytruncate
    assert t.read_lines() == []
    with f.open("ab") as out:
        out.write(b"d\n")
    assert t.read_lines() == [b"d"] and t.truncations == 1


def test_tail_waits_for_a_missing_file_and_drops_overlong_lines(tmp_path: Path) -> None:
    """A file that is not there yet is read from its start once it appears; a line longer
    than max_line is dropped and counted, the next one is read."""
    f = tmp_path / "broker.log"
    t = LogTail(f, max_read=64, max_line=32)
    assert t.read_lines() == []
    f.write_bytes(b"")
    assert t.read_lines() == []
    with f.open("ab") as out:
        out.write(b"x" * 100 + b"\nshort\n" + b"y" * 40 + b"\nok\n")
    got: list[bytes] = []
    for _ in range(10):
        got += t.read_lines()
    assert got == [b"short", b"ok"] and t.overlong == 2


def test_tail_resumes_where_it_stopped(tmp_path: Path) -> None:
    """Given its last position in the same file, the tail misses nothing logged while it
    was not running."""
    f = tmp_path / "broker.log"
    f.write_bytes(b"")
    t = LogTail(f)
    t.read_lines()
    with f.open("ab") as out:
        out.write(b"seen\nhalf")
    assert t.read_lines() == [b"seen"]
    pos = t.position
    t.close()
    with f.open("ab") as out:
        out.write(b" line\nwhile away\n")
    assert LogTail(f, start=pos).read_lines() == [b"half line", b"while away"]


# -- the watch: counter and alert ------------------------------------------------------------


def _registry(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        svc.add_site(s, "s1", "Site one")
        svc.add_home(s, "h1", "s1")
        svc.add_device(s, "a", "s1", "h1", "multisensor")
        svc.add_device(s, "loose", "s1", None, "multisensor")


def _denied(cid: str, topic: str, at: int) -> str:
    return f"{at}: Denied PUBLISH from {cid} (d0, q1, r0, m1, '{topic}', ... (12 bytes))\n"


def _watch(tmp_path: Path, factory: sessionmaker[Session], **opts: object
           ) -> tuple[DenialWatch, Path]:
    f = tmp_path / "broker.log"
    f.write_text("1796360000: mosquitto version 2.0.11 running\n")
    w = DenialWatch(DenialOptions(**opts), f, factory,
                    metrics=DenialMetrics(CollectorRegistry()), clock=lambda: 1796362000.0)
    w.step()
    return w, f


def _alerts(factory: sessionmaker[Session]) -> list[Alert]:
    with factory() as s:
        return list(s.scalars(select(Alert).where(Alert.rule == "acl_denied")
                              .order_by(Alert.id)))


def test_a_device_that_keeps_trying_raises_one_alert_that_counts_repeats(
        tmp_path: Path, sqlite_factory: sessionmaker[Session]) -> None:
    """Twenty denials in three minutes: one technical alert for the device, low priority,
    naming the topic; later reports count on it; the counter has every denial."""
    _registry(sqlite_factory)
    w, f = _watch(tmp_path, sqlite_factory)
    with f.open("a") as out:
        out.write("1796362000: New client connected from 127.0.0.1:5 as a (p2, c1, k60, "
                  "u'a').\n")
        out.writelines(_denied("a", "care/v1/s1/b/telemetry", 1796362000 + 9 * i)
                       for i in range(20))
    w.step()
    [alert] = _alerts(sqlite_factory)
    assert (alert.site_id, alert.home_id, alert.device_id, alert.klass, alert.priority,
            alert.status) == ("s1", "h1", "a", "technical", "low", "open")
    assert alert.detail["topic"] == "care/v1/s1/b/telemetry"
    assert alert.detail["identified_by"] == "username"
    # reported at the 5th (t+36), then at most every 60 s: t+99, t+162 → count 3
    assert alert.count == 3 and alert.detail["denied"] == 19
    m = w.metrics.registry
    assert m.get_sample_value("dolbom_broker_acl_denied_total", {"reason": "publish"}) == 20
    assert m.get_sample_value("dolbom_broker_acl_reports_total", {"action": "raised"}) == 1
    assert m.get_sample_value("dolbom_broker_acl_reports_total", {"action": "repeated"}) == 2


def test_one_denial_raises_nothing_and_strangers_only_count(
        tmp_path: Path, sqlite_factory: sessionmaker[Session]) -> None:
    """A device denied once raises nothing; an unregistered client is counted, not alerted;
    a device with no home gets an alert with no home; a malformed line is only counted."""
    _registry(sqlite_factory)
    w, f = _watch(tmp_path, sqlite_factory)
    with f.open("a") as out:
        out.write(_denied("a", "care/v1/s1/b/telemetry", 1796362000))
        out.writelines(_denied("stranger", "care/#", 1796362000 + i) for i in range(5))
        out.writelines(_denied("loose", "care/v1/s1/a/status", 1796362000 + i)
                       for i in range(5))
        out.write("1796362000: Denied PUBLISH from a (d0, q1\n")
    w.step()
    [alert] = _alerts(sqlite_factory)
    assert (alert.device_id, alert.home_id, alert.detail["identified_by"]) == (
        "loose", None, "client_id")
    m = w.metrics.registry
    assert m.get_sample_value("dolbom_broker_acl_denied_total", {"reason": "publish"}) == 11
    assert m.get_sample_value("dolbom_broker_acl_reports_total",
                              {"action": "not_a_device"}) == 1
    assert m.get_sample_value("dolbom_broker_log_malformed_total") == 1


def test_every_option_is_in_the_example_env() -> None:
    """dolbom.example.env lists every DOLBOM_DENIALS__ option with the code's default."""
    lines = [ln for ln in EXAMPLE.read_text().splitlines() if ln and not ln.startswith("#")]
    documented = dict(ln.split("=", 1) for ln in lines)
    for name, f in DenialOptions.model_fields.items():
        env = f"DOLBOM_DENIALS__{name.upper()}"
        assert documented.get(env) == ("" if f.default is None else str(f.default)), env


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {}, "error: name the broker's log: --log FILE or DOLBOM_DENIALS__LOG_FILE"),
    (["--log", "."], {}, "error: . is a directory, not the broker's log"),
    (["--log", "x.log"], {"DOLBOM_DENIALS__THRESHOLD": "0"},
     "config error: denials.threshold (DOLBOM_DENIALS__THRESHOLD): Input should be greater "
     "than or equal to 1"),
    (["--log", "x.log"], {"DOLBOM_DENIALS__REPEAT_S": "900"},
     "config error: denials (DOLBOM_DENIALS): Value error, denials.repeat_s must not be "
     "longer than denials.window_s"),
])
def test_watch_denials_refuses_with_one_line(
        argv: list[str], env: dict[str, str], message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing log, a directory or a bad setting stops the command with one clear line."""
    from dolbom.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOLBOM_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["broker", "watch-denials", *argv]) == 1
    assert capsys.readouterr().err.strip() == message


def test_watch_denials_needs_a_migrated_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Against an empty database the command says to migrate first, in one line."""
    from dolbom.cli import main

    monkeypatch.setenv("DOLBOM_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    assert main(["broker", "watch-denials", "--log", str(tmp_path / "broker.log")]) == 1
    assert capsys.readouterr().err.strip() == (
        "database error: no such table: devices (run `dolbom registry migrate` first)")


def test_the_watch_keeps_its_place_across_restarts(
        tmp_path: Path, sqlite_factory: sessionmaker[Session]) -> None:
    """With a state file, denials logged while the watcher was stopped are still counted."""
    _registry(sqlite_factory)
    state = tmp_path / "watch.json"
    w, f = _watch(tmp_path, sqlite_factory, state_file=state)
    w.save_position()
    w.tail.close()
    with f.open("a") as out:
        out.writelines(_denied("a", "care/v1/s1/b/telemetry", 1796362000 + i) for i in range(5))
    again = DenialWatch(DenialOptions(state_file=state), f, sqlite_factory,
                        metrics=DenialMetrics(CollectorRegistry()), clock=lambda: 1796362100.0)
    again.step()
    assert again.metrics.registry.get_sample_value(
        "dolbom_broker_acl_denied_total", {"reason": "publish"}) == 5
    assert len(_alerts(sqlite_factory)) == 1
