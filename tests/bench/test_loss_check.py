"""The benchmark's counting path against real servers: it sees every message, and a lost one.

Real Mosquitto (with the benchmark's accounts) and InfluxDB, the real ``dolbom
ingest run`` process, the real load generator process; a tiny fleet and rate,
a few seconds. Bounded: well under a minute.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dolbom.bench.accounts import Account, Accounts, write_broker_files
from dolbom.bench.count import Counter, safe_written, site_groups, wait_drained
from dolbom.bench.fleet import Fleet
from dolbom.bench.frames import StepPlan
from dolbom.bench.loadgen import LoadGen, LoadGenConfig
from dolbom.bench.report import INGEST_MESSAGES, ingest_cost
from dolbom.bench.runner import BenchConfig, StepResult, judge, wait_ready
from dolbom.bench.targets import DolbomIngest, Servers
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.stack.influx import InfluxDB
from dolbom.stack.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

DB = "bench_t"


Pipeline = tuple[Servers, InfluxHTTP, LoadGen, Fleet, DolbomIngest]


@pytest.fixture()
def pipeline(make_mosquitto: Callable[[], Mosquitto], make_influx: Callable[[], InfluxDB],
             influx_users: InfluxUsers, runtime_dir: Path, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """The servers, ``dolbom ingest run`` (``request.param`` workers; 1 unless a test
    parametrizes it), the load generator, the fleet."""
    accounts = Accounts(Account("loadgen", "lg-pw"), Account("ingest", "in-pw"),
                        Account("peer", "peer-pw"), influx_users, Account("peer", "ip-pw"))
    mosq = make_mosquitto()
    write_broker_files(mosq.files, accounts, "care/v1")
    mosq.reload()
    influx = make_influx()
    admin = InfluxHTTP(influx.url, *influx_users.admin)
    admin.query(f'CREATE DATABASE "{DB}"', method="POST")
    admin.query(f'GRANT WRITE ON "{DB}" TO "{influx_users.ingest[0]}"', method="POST")
    servers = Servers("127.0.0.1", mosq.port, influx.url, influx.port, DB, accounts, "care/v1")
    fleet = Fleet(homes=50, homes_per_site=18)
    ingest = DolbomIngest(workers=getattr(request, "param", 1))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=runtime_dir))
    ingest.prepare(run_dir, fleet)
    ingest.start(servers)
    time.sleep(0.5)  # the broker re-reads its ACL on SIGHUP asynchronously
    gen = LoadGen.start(LoadGenConfig("127.0.0.1", mosq.port, "loadgen", "lg-pw", fleet,
                                      connections=2, boot=2))
    try:
        wait_ready(servers, fleet, admin, 60)
        yield servers, admin, gen, fleet, ingest
    finally:
        gen.stop()
        ingest.stop()


def test_every_offered_message_is_counted_and_a_missing_one_is_loss(
        pipeline: Pipeline) -> None:
    """300 msg/s for 3 s all arrive (zero loss); deleting one point makes the check say LOSS."""
    servers, admin, gen, _, _ = pipeline
    written = safe_written(servers.influx_url, DB)
    prepared = gen.prepare(StepPlan(300, 3, 0, 2, 10))
    before = written()
    start_at = float(int(time.time()) + 2)
    offered = gen.run(start_at)
    assert offered.messages == 900 and offered.acked == offered.qos1 == 900
    assert offered.max_lag_s < 1.0
    # Two sites per query: the grouped count adds up (the fleet's 50 homes are 3 sites).
    counter = Counter(admin, DB, site_groups(["site-000", "site-001", "site-002"], 18 * 6,
                                             max_devices=2 * 18 * 6))
    drain = wait_drained(counter, prepared.per_measurement, int(start_at * 1000),
                         written=written, written_before=before, deadline_s=30)
    assert drain.complete_at is not None, drain.tally
    assert drain.tally.missing == 0 and drain.tally.counted == prepared.per_measurement
    cfg = BenchConfig()
    drain_s = drain.complete_at - offered.last_write_at
    assert judge(cfg, offered, drain.tally.missing, drain.tally.extra, drain_s) == (
        True, "sustained")

    # One point less in InfluxDB than offered: the count must notice.
    q = f'SELECT * FROM "reading" WHERE time >= {int(start_at * 1000)}ms LIMIT 1'  # noqa: S608
    row = admin.rows(q, DB)[0]
    delete = (f"DELETE FROM \"reading\" WHERE device = '{row['device']}' "  # noqa: S608
              f"AND time = {row['time']}ms")
    admin.query(delete, DB, method="POST")
    end_ms = int(time.time() * 1000) + 1000
    after = counter.tally(prepared.per_measurement, int(start_at * 1000), end_ms)
    assert after.missing == 1
    ok, verdict = judge(cfg, offered, after.missing, after.extra, drain_s)
    assert not ok and verdict.startswith("LOSS: 1 points missing")

    # Offering one more message than was written is the same loss, seen from the other side.
    more = {**prepared.per_measurement, "event": prepared.per_measurement["event"] + 1}
    assert counter.tally(more, int(start_at * 1000), end_ms).missing == 2
    # ... and the window is the step's: nothing before it is counted.
    assert counter.count("reading", 0, int(start_at * 1000)) >= 1  # the probe


@pytest.mark.parametrize("pipeline", [2], indirect=True)
def test_two_workers_share_the_stream_and_each_is_measured(pipeline: Pipeline) -> None:
    """``dolbom bench --ingest-workers 2``: both workers take a share of the messages, none
    is lost or stored twice, and each worker's own counters are read (the per-worker CPU
    per message of the report divides by them)."""
    servers, admin, gen, _, ingest = pipeline
    assert sorted(ingest.processes()) == ["ingest-1", "ingest-2"]
    written = safe_written(servers.influx_url, DB)
    prepared = gen.prepare(StepPlan(300, 3, 0, 2, 10))
    before = written()
    m0 = ingest.metrics()
    start_at = float(int(time.time()) + 2)
    assert gen.run(start_at).messages == 900
    counter = Counter(admin, DB, site_groups(["site-000", "site-001", "site-002"], 18 * 6))
    drain = wait_drained(counter, prepared.per_measurement, int(start_at * 1000),
                         written=written, written_before=before, deadline_s=30)
    assert drain.complete_at is not None, drain.tally
    assert drain.tally.missing == 0 == drain.tally.extra
    m1 = ingest.metrics()
    taken = {w: m1[f"{w}/{INGEST_MESSAGES}"] - m0.get(f"{w}/{INGEST_MESSAGES}", 0.0)
             for w in ("ingest-1", "ingest-2")}
    assert sum(taken.values()) == 900 == m1[INGEST_MESSAGES] - m0[INGEST_MESSAGES]
    assert all(n >= 100 for n in taken.values()), taken  # both take a share


def test_ingest_cost_is_cpu_time_over_messages_in_all_and_per_worker() -> None:
    """50 % of a core for 10 s over 100,000 messages is 50 µs a message."""
    step = StepResult(
        rate=10_000, duration=10, messages=100_000, per_type={}, expected={}, counted={},
        missing=0, extra=0, offered_rate=10_000.0, max_lag_s=0.0, qos1=0, acked=0,
        drain_s=1.0, cpu_pct={"broker": 30.0, "ingest-1": 30.0, "ingest-2": 20.0},
        rss_peak={}, machine_busy_pct=50.0, irq_pct=0.0, encode_s=0.0, sustained=True,
        verdict="sustained", target_metrics={
            INGEST_MESSAGES: 100_000.0, f"ingest-1/{INGEST_MESSAGES}": 60_000.0,
            f"ingest-2/{INGEST_MESSAGES}": 40_000.0})
    line = ingest_cost(step)
    assert "ingest CPU per message taken: 50.0 µs (100,000 messages)" in line
    assert "ingest-1 50.0 µs × 60,000 (6,000/s), ingest-2 50.0 µs × 40,000 (4,000/s)" in line
    one = dataclasses.replace(step, cpu_pct={"ingest": 40.0},
                              target_metrics={INGEST_MESSAGES: 100_000.0})
    assert ingest_cost(one).endswith("taken: 40.0 µs (100,000 messages)")  # no per-worker part
