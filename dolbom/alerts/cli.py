"""``dolbom alerts``: run the alerts service, and work alerts from the command line.

The operations (ack, resolve, assign, note) call the same lifecycle functions as the
service and, later, the HTTP API. Each needs ``--as USERNAME``: every change is done
by a person and written to the alert's timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.errors import AlertError
from dolbom.alerts.model import Outcome
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.errors import RegistryError
from dolbom.settings import BaseServiceSettings, SettingsError, env_file_parent, load

Handler = Callable[[argparse.Namespace, str], int]


def _command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load(BaseServiceSettings, args.env_file)
            return fn(args, settings.database_url)
        except SettingsError as e:
            print(str(e), file=sys.stderr)
        except (AlertError, RegistryError) as e:
            print(f"error: {e}", file=sys.stderr)
        except SQLAlchemyError as e:
            first = str(getattr(e, "orig", e)).strip().splitlines()[:1]
            print(f"database error: {first[0] if first else type(e).__name__}",
                  file=sys.stderr)
        return 1

    return run


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _list(args: argparse.Namespace, url: str) -> int:
    status = args.status.split(",") if args.status else ["open", "acknowledged"]
    with session_factory(url)() as s:
        alerts = lc.list_alerts(s, status=status, priority=args.priority, site=args.site,
                                limit=args.limit)
    if not alerts:
        print("no alerts")
        return 0
    print(f"{'ID':>6}  {'PRIORITY':8}  {'STATUS':12}  {'RULE':20}  {'SITE':10}  {'HOME':10}  "
          f"{'COUNT':>5}  RAISED (UTC)")
    for a in alerts:
        print(f"{a.id:>6}  {a.priority:8}  {a.status:12}  {a.rule:20}  {a.site_id:10}  "
              f"{a.home_id or '-':10}  {a.count:>5}  {_fmt(a.raised_at)}")
    return 0


def _show(args: argparse.Namespace, url: str) -> int:
    with session_factory(url)() as s:
        a = lc.get_alert(s, args.id)
        events = lc.timeline(s, args.id)
    print(f"alert {a.id}: {a.rule} ({a.priority}, {a.klass}) — {a.status}")
    print(f"  site {a.site_id}  home {a.home_id or '-'}  device {a.device_id or '-'}")
    print(f"  raised {_fmt(a.raised_at)}  count {a.count}  tier {a.tier}"
          + (f"  outcome {a.outcome}" if a.outcome else ""))
    if a.next_escalation_at:
        print(f"  next escalation {_fmt(a.next_escalation_at)}")
    for e in events:
        extra = ", ".join(f"{k}={v}" for k, v in (e.detail or {}).items())
        print(f"  {_fmt(e.at)}  {e.kind:14} {e.actor:12} {extra}")
    return 0


def _ack(args: argparse.Namespace, url: str) -> int:
    with session_factory(url).begin() as s:
        lc.acknowledge(s, args.id, registry.get_user(s, args.actor), _now())
    print(f"alert {args.id} acknowledged by {args.actor}")
    return 0


def _resolve(args: argparse.Namespace, url: str) -> int:
    with session_factory(url).begin() as s:
        lc.resolve(s, args.id, Outcome(args.outcome), registry.get_user(s, args.actor), _now(),
                   note=args.note)
    print(f"alert {args.id} resolved: {args.outcome}")
    return 0


def _assign(args: argparse.Namespace, url: str) -> int:
    with session_factory(url).begin() as s:
        lc.assign(s, args.id, registry.get_user(s, args.to), registry.get_user(s, args.actor),
                  _now())
    print(f"alert {args.id} assigned to {args.to}")
    return 0


def _note(args: argparse.Namespace, url: str) -> int:
    with session_factory(url).begin() as s:
        lc.add_note(s, args.id, args.text, registry.get_user(s, args.actor), _now())
    print(f"note added to alert {args.id}")
    return 0


def _stats(args: argparse.Namespace, url: str) -> int:
    since = until = None
    if args.month:
        try:
            since = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            print("error: --month is YYYY-MM", file=sys.stderr)
            return 1
        until = (since + timedelta(days=32)).replace(day=1)
    with session_factory(url)() as s:
        st = lc.response_stats(s, site=args.site, since=since, until=until,
                               priority=args.priority)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    def sec(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f} s"

    print(f"{st.alerts} {args.priority} alerts, {st.acknowledged} acknowledged, "
          f"{st.resolved} resolved by a person")
    print(f"  acknowledged within 60 s:  {pct(st.within_60s)}  (target 97.5 %)")
    print(f"  acknowledged within 180 s: {pct(st.within_180s)}  (target 99 %)")
    print(f"  time to acknowledge p50 {sec(st.tta_p50_s)}  p97.5 {sec(st.tta_p975_s)}  "
          f"p99 {sec(st.tta_p99_s)}")
    print(f"  time to resolve     p50 {sec(st.ttr_p50_s)}  p99 {sec(st.ttr_p99_s)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dolbom.alerts.service import AlertService
    from dolbom.alerts.settings import AlertsSettings
    from dolbom.signals import install_signal_handlers

    try:
        settings = load(AlertsSettings, args.env_file)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return 1

    async def main() -> None:
        svc = AlertService(settings)
        install_signal_handlers(svc.stopping)
        await svc.run()

    asyncio.run(main())
    return 0


def _alarms(args: argparse.Namespace) -> int:
    from dolbom.alerts.alarm.serve import serve
    from dolbom.alerts.settings import AlertsSettings

    try:
        settings = load(AlertsSettings, args.env_file)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(settings)


def _replay(args: argparse.Namespace) -> int:
    from dolbom.alerts.replay import ReplayError, print_progress, replay_files

    try:
        stats = replay_files(args.homes, args.messages, args.out,
                             None if args.quiet else print_progress, args.topic_prefix)
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(file=sys.stderr)
    acts = ", ".join(f"{n} {a}" for a, n in sorted(stats.by_action.items())) or "none"
    print(f"{stats.messages:,} messages ({stats.bad_lines} bad lines, "
          f"{stats.ignored} not valid, {stats.unknown_devices} from devices in no home); "
          f"{stats.alerts} alert lines ({acts}) -> {args.out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = env_file_parent()
    p = sub.add_parser("alerts", help="care alerts: the service and the operations")
    asub = p.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)

    def leaf(name: str, help_: str, fn: Handler) -> argparse.ArgumentParser:
        q = asub.add_parser(name, parents=[common], help=help_, description=help_)
        q.set_defaults(func=_command(fn))
        return q

    def acting(q: argparse.ArgumentParser) -> None:
        q.add_argument("--as", dest="actor", required=True, metavar="USERNAME",
                       help="who does it (recorded in the timeline)")

    run = asub.add_parser("run", parents=[common], help="run the alerts service")
    run.set_defaults(func=_run)
    q = asub.add_parser(
        "alarms", parents=[common],
        help="run the life-safety path on its own (with alarm_process=external)",
        description="Run the alarm process: life-safety events journalled, acknowledged "
        "and notified, re-notified and escalated, whatever the rules process is doing. "
        "Run it under a supervisor that restarts it (docs/alerts.md); set "
        "DOLBOM_ALERTS__ALARM_PROCESS=external for `dolbom alerts run` then.")
    q.set_defaults(func=_alarms)
    q = asub.add_parser(
        "replay", help="run the real rules over a recorded stream, without servers",
        description="Run the alert rules, exactly as the service runs them, over "
        "recorded or simulated messages on their own clock, and write what people would "
        "have been told (formats: docs/alerts.md, 'Replay').")
    q.add_argument("--homes", type=Path, required=True, help="homes.json: homes and devices")
    q.add_argument("--messages", type=Path, required=True,
                   help="messages.jsonl: one received message per line, in receive order")
    q.add_argument("--out", type=Path, required=True, help="alerts.jsonl to write")
    q.add_argument("--topic-prefix", default="care/v1", help="topic prefix (default care/v1)")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    q.set_defaults(func=_replay)
    q = leaf("list", "open and acknowledged alerts, newest first", _list)
    q.add_argument("--status", help="comma-separated: open,acknowledged,resolved")
    q.add_argument("--priority", choices=["high", "medium", "low"])
    q.add_argument("--site")
    q.add_argument("--limit", type=int, default=100)
    q = leaf("show", "an alert with its full timeline", _show)
    q.add_argument("id", type=int)
    q = leaf("ack", "acknowledge: you are on it (stops escalation)", _ack)
    q.add_argument("id", type=int)
    acting(q)
    q = leaf("resolve", "close an alert with what happened", _resolve)
    q.add_argument("id", type=int)
    q.add_argument("--outcome", required=True,
                   choices=[o.value for o in Outcome if o is not Outcome.AUTO_CLEARED])
    q.add_argument("--note")
    acting(q)
    q = leaf("assign", "give an alert to someone", _assign)
    q.add_argument("id", type=int)
    q.add_argument("--to", required=True, metavar="USERNAME")
    acting(q)
    q = leaf("note", "add a note to an alert's timeline", _note)
    q.add_argument("id", type=int)
    q.add_argument("text")
    acting(q)
    q = leaf("stats", "time to acknowledge / resolve against the 60 s / 180 s targets", _stats)
    q.add_argument("--site")
    q.add_argument("--month", help="YYYY-MM (default: all time)")
    q.add_argument("--priority", default="high", choices=["high", "medium", "low"])
