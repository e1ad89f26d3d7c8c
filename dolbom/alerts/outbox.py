"""Delivering the notification outbox: at least once per (alert, recipient, channel).

A row is marked sent only after its channel confirmed delivery, so a crash between
sending and marking can only repeat a notice (receivers dedup by the delivery id),
never lose one. A failing delivery is retried with capped, jittered backoff for as
long as it takes; after ``fallback_after_attempts`` failures (or at once when the
channel says it will never work) the recipient's next channel is tried as well.
A channel failing for ``channel_down_after_s`` raises a technical alert
(``service_unreachable``) that clears itself when the channel delivers again.

A link that gives no answer at all (an attempt timed out: the provider accepts and
stalls, or packets are dropped) may still hold what was sent and deliver it when it
heals, so every attempt into it can become one more copy for the receiver. Such a
link (``_link``: a webhook's URL without its query, the ntfy or SMTP server) is
*silent*: from then on only one attempt at a time goes into it, always the same
notice (its *probe*), at that notice's own backoff. Its other due notices are not
sent: each such turn is recorded as a failed attempt ("held"), with the backoff,
fallback to the person's next channel and technical alert of a failure, and they
stay pending. When anything sent into the link is answered, it is silent no more;
when answered with a delivery, the notices it held fall due at once. So a receiver
behind a link that held every request gets each notice at most twice (the attempt
under way when the link fell silent, then the delivery), and the probe notice once
more per timed-out probe. A refused connection, a reset or an error status is an
answer, not silence: such notices keep their own retries, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, case, select, update
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.model import EscalationTable, Priority, Rule, Status
from dolbom.alerts.notify.base import Channel, DeliveryError
from dolbom.alerts.notify.factory import build_channels
from dolbom.alerts.notify.notice import Notice
from dolbom.alerts.recipients import add_notice, contacts_of
from dolbom.alerts.settings import AlertsSettings
from dolbom.mqtt.backoff import jittered
from dolbom.registry.models import Alert, Outbox, User

log = logging.getLogger("dolbom.alerts.outbox")
PARALLEL = 16  # deliveries in flight at once, per class (life-safety / others)
QUEUED = 4 * PARALLEL  # notices taken from the table per class, in flight or waiting
STOP_GRACE_S = 2.0


def of_class(high: bool) -> ColumnElement[bool]:
    """Alerts whose notices and escalations are the alarm path's (``high``: life-safety,
    priority high) or the rules process's (the others). One split, used for both, so an
    alert has exactly one owner of its notices and of its escalation steps."""
    return Alert.priority == Priority.HIGH.value if high else Alert.priority != Priority.HIGH.value


def escalate_due(s: Session, now: datetime, table: EscalationTable, *,
                 high: bool | None) -> int:
    """Carry out the due escalation steps (re-notify, next tier; DESIGN.md §5) of the
    unacknowledged alerts of one class (``high``: see ``of_class``; None: both, for a
    service that runs the alarm path itself); returns how many. The caller owns the
    transaction. The rows are locked (PostgreSQL; SQLite has one writer at a time), so
    two processes never carry out the same step, even while an alert's priority rises."""
    stmt = (select(Alert.id).where(Alert.next_escalation_at.is_not(None),
                                   Alert.next_escalation_at <= now,
                                   Alert.status == Status.OPEN.value)
            .order_by(Alert.next_escalation_at))
    if high is not None:
        stmt = stmt.where(of_class(high))
    due = list(s.scalars(stmt.with_for_update(skip_locked=True)))
    for alert_id in due:
        lc.escalate(s, alert_id, now, table)
    return len(due)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    channel: str
    address: str
    attempts: int
    notice: Notice
    locale: str
    queued_at: datetime


@dataclass(slots=True)
class SilentLink:
    """A link that gave no answer: the notice that probes it and the ones held."""

    probe: int | None = None  # the notice sent into it when it falls due
    probe_due: float = 0.0  # clock time the probe's next attempt falls due
    probing: int | None = None  # the probe under way, if one is
    held: set[int] = field(default_factory=set)  # notices held since it fell silent


HELD = "held: the link gave no answer; one attempt at a time goes into it"


def outbox_for(settings: AlertsSettings, sessions: sessionmaker[Session],
               channels: Mapping[str, Channel] | None, *, clock: Callable[[], float],
               table: EscalationTable, metrics: AlertsMetrics, gate: WriteGate) -> OutboxWorker:
    """The outbox worker a service runs, configured by its settings (``channels``: None
    builds them from ``settings.notify``)."""
    o = settings.alerts
    return OutboxWorker(
        sessions, channels if channels is not None else build_channels(settings.notify),
        clock=clock, table=table, retry_initial_s=o.retry_initial_s, retry_max_s=o.retry_max_s,
        fallback_after_attempts=o.fallback_after_attempts,
        channel_down_after_s=o.channel_down_after_s, console_url=o.console_url,
        metrics=metrics, gate=gate)


class OutboxWorker:
    def __init__(self, sessions: sessionmaker[Session], channels: Mapping[str, Channel], *,
                 clock: Callable[[], float], table: EscalationTable, retry_initial_s: float,
                 retry_max_s: float, fallback_after_attempts: int, channel_down_after_s: float,
                 console_url: str | None = None, metrics: AlertsMetrics | None = None,
                 gate: WriteGate | None = None) -> None:
        self.sessions, self.channels, self.clock, self.table = sessions, channels, clock, table
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.fallback_after = fallback_after_attempts
        self.channel_down_after_s = channel_down_after_s
        self.console_url = console_url
        self.metrics = metrics
        self.gate = gate or WriteGate()
        self.wake = asyncio.Event()
        self.sent = 0
        self.failures = 0
        # channel -> (first failure time, sites with an open channel-down alert)
        self._down_since: dict[str, float] = {}
        self._down_sites: dict[str, set[str]] = {}
        self.silent: dict[str, SilentLink] = {}  # by _link
        self.held = 0  # attempts held back from silent links

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- what is due ---------------------------------------------------------------
    def _due(self, *, high: bool, limit: int, exclude: frozenset[int]) -> list[Job]:
        """Due rows of life-safety alerts (``high``) or of the others, oldest first."""
        prio = of_class(high)
        with self.sessions() as s:
            stmt = (select(Outbox, Alert, User).join(Alert, Alert.id == Outbox.alert_id)
                    .join(User, User.id == Outbox.user_id)
                    .where(Outbox.status == "pending", Outbox.next_attempt_at <= self.now(),
                           prio))
            if exclude:
                stmt = stmt.where(Outbox.id.not_in(exclude))
            if not high:  # medium before low
                stmt = stmt.order_by(case((Alert.priority == "medium", 0), else_=1))
            rows = s.execute(stmt.order_by(Outbox.next_attempt_at, Outbox.id)
                             .limit(limit)).all()
            return [Job(o.id, o.channel, o.address, o.attempts, self._notice(o, a), u.locale,
                        o.next_attempt_at) for o, a, u in rows]

    def _notice(self, o: Outbox, a: Alert) -> Notice:
        url = f"{self.console_url.rstrip('/')}/{a.id}" if self.console_url else None
        return Notice(alert_id=a.id, rule=a.rule, priority=a.priority, status=a.status,
                      site=a.site_id, home=a.home_id, device=a.device_id,
                      raised_at=a.raised_at, event_ts=a.event_ts, kind=o.notice, tier=o.tier,
                      detail=dict(a.detail or {}), console_url=url, step=o.step)

    async def _deliver(self, job: Job) -> None:
        channel = self.channels.get(job.channel)
        error: DeliveryError | None = None
        if channel is None:
            error = DeliveryError(f"channel {job.channel!r} is not configured", retryable=False)
        else:
            try:
                await channel.send(job.address, job.notice, job.locale)
            except DeliveryError as e:
                error = e
            except TimeoutError:
                error = DeliveryError(f"{job.channel}: no answer", retryable=True, silent=True)
            except Exception as e:
                error = DeliveryError(f"{type(e).__name__}: {e}", retryable=True)
        m = self.metrics
        if m is not None:
            m.notices.labels(job.channel, "failed" if error else "sent").inc()
            if error is None:
                m.notice_delay.labels(job.notice.priority).observe(
                    max(0.0, self.clock() - job.queued_at.timestamp()))
        if error is None:
            self.sent += 1
            await self.gate.run(lambda: self._mark_sent(job))
            await self._answered(job, delivered=True)
            await self._channel_ok(job)
            return
        self.failures += 1
        log.warning("notice %d via %s failed (attempt %d): %s", job.id, job.channel,
                    job.attempts + 1, error.reason)
        due = await self.gate.run(lambda: self._mark_failed(job, error))
        if error.silent:
            self._went_silent(job, due)
        else:
            await self._answered(job, delivered=False)
        await self._channel_failed(job)

    async def _hold(self, job: Job) -> None:
        """A due notice of a silent link while its probe is under way or not yet due:
        not sent; a failed attempt for its backoff, fallback and technical alert."""
        self.held += 1
        if self.metrics is not None:
            self.metrics.notices.labels(job.channel, "held").inc()
        log.debug("notice %d via %s held: its link gave no answer", job.id, job.channel)
        await self.gate.run(lambda: self._mark_failed(
            job, DeliveryError(HELD, retryable=True, silent=True)))
        await self._channel_failed(job)

    # -- silent links (see the module's docstring) -----------------------------------
    def _link(self, job: Job) -> str:
        """What falls silent as one: the same unit as a failing channel (``_endpoint``: a
        webhook's URL, not its host, so that a receiver stalling on one path never holds
        up the notices of another path of the same host that answers)."""
        return self._endpoint(job)

    def _done(self, job: Job) -> None:
        """A delivery ended however it ended (an error in the bookkeeping too): a probe
        is no longer under way."""
        link = self.silent.get(self._link(job))
        if link is not None and link.probing == job.id:
            link.probing = None

    def _may_send(self, job: Job) -> bool:
        """Called when ``job`` falls due: whether to send it (False: hold it). Sending
        into a silent link makes ``job`` its probe under way."""
        link = self.silent.get(self._link(job))
        if link is None:
            return True
        # Another notice takes over as the probe if the probe, long due, is not among
        # those due (it went elsewhere: sent by the other process once its alert's
        # priority rose). A probe due is seen first (``_probes_first``).
        lost = self.clock() > link.probe_due + self.retry_max_s
        if link.probing is None and (link.probe in (None, job.id) or lost):
            link.probe, link.probing = job.id, job.id
            link.held.discard(job.id)
            return True
        link.held.add(job.id)
        return False

    def _probes_first(self, jobs: list[Job]) -> list[Job]:
        """Due notices, the probes of silent links first (each keeps its turn)."""
        if not self.silent:
            return jobs
        probes = {link.probe for link in self.silent.values()}
        return sorted(jobs, key=lambda j: j.id not in probes)

    def _went_silent(self, job: Job, due: float | None) -> None:
        key = self._link(job)
        link = self.silent.get(key)
        if link is None:
            link = self.silent[key] = SilentLink()
            log.warning("notices via %s: no answer; one attempt at a time until it answers",
                        job.channel)
        if link.probing == job.id:
            link.probing = None
        if link.probe is None or link.probe == job.id:
            link.probe = job.id if due is not None else None
            link.probe_due = due if due is not None else 0.0
        else:
            link.held.add(job.id)

    async def _answered(self, job: Job, *, delivered: bool) -> None:
        """Something sent into the link was answered: it is silent no more. After a
        delivery the notices it held fall due now; after an error answer they keep their
        own backoff."""
        link = self.silent.pop(self._link(job), None)
        if link is None:
            return
        log.info("notices via %s: answered again; %d held notices %s", job.channel,
                 len(link.held), "due now" if delivered else "keep their backoff")
        held = link.held - {job.id}
        if delivered and held:
            await self.gate.run(lambda: self._release(held))
            self.wake.set()

    def _release(self, ids: set[int]) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Outbox).where(Outbox.id.in_(ids), Outbox.status == "pending")
                      .values(next_attempt_at=self.now()))

    # -- bookkeeping (worker thread) -------------------------------------------------
    def _mark_sent(self, job: Job) -> None:
        with self.sessions.begin() as s:
            o = s.get(Outbox, job.id)
            if o is not None:
                o.status, o.sent_at, o.attempts = "sent", self.now(), o.attempts + 1

    def _mark_failed(self, job: Job, error: DeliveryError) -> float | None:
        """Record a failed attempt; when it is retried (clock time), None if never."""
        now = self.now()
        due: float | None = None
        with self.sessions.begin() as s:
            o = s.get(Outbox, job.id)
            if o is None or o.status != "pending":
                return None
            o.attempts += 1
            o.last_error = error.reason[:300]
            if error.retryable:
                delay = jittered(self.retry_initial_s, self.retry_max_s, o.attempts - 1)
                o.next_attempt_at = now + timedelta(seconds=delay)
                due = now.timestamp() + delay
            else:
                o.status = "failed"
            if not error.retryable or o.attempts == self.fallback_after:
                self._fallback(s, o, now)
        return due

    def _fallback(self, s: Session, o: Outbox, now: datetime) -> None:
        """Queue the same notice on the recipient's next channel (once)."""
        contacts = contacts_of(s, o.user_id)
        ids = [c.id for c in contacts]
        at = ids.index(o.contact_id) if o.contact_id in ids else -1
        later = contacts[at + 1:]
        if not later:
            return
        c = later[0]
        key = f"{o.dedup_key.rsplit('/', 1)[0]}/{c.channel}#{c.id}"
        if not add_notice(s, o.alert_id, o.user_id, c, o.notice, o.step, o.tier, now, key):
            return
        log.info("notice %d: falling back from %s to %s", o.id, o.channel, c.channel)

    # -- channel health -----------------------------------------------------------
    @staticmethod
    def _endpoint(job: Job) -> str:
        """What fails as one: a webhook's URL (its query aside), an Apprise URL's scheme and
        host; ntfy and e-mail go through one configured server each."""
        if job.channel in ("webhook", "apprise"):
            url = urlsplit(job.address)._replace(query="", fragment="").geturl()
            return f"{job.channel}:{url}"
        return job.channel

    async def _channel_failed(self, job: Job) -> None:
        now = self.clock()
        key = self._endpoint(job)
        since = self._down_since.setdefault(key, now)
        site = job.notice.site
        if now - since >= self.channel_down_after_s and site not in self._down_sites.get(
                key, set()):
            self._down_sites.setdefault(key, set()).add(site)
            await self.gate.run(lambda: self._raise_channel_down(site, job.channel))

    async def _channel_ok(self, job: Job) -> None:
        key = self._endpoint(job)
        self._down_since.pop(key, None)
        for site in self._down_sites.pop(key, set()):
            await self.gate.run(partial(self._clear_channel_down, site, job.channel))

    def _raise_channel_down(self, site: str, channel: str) -> None:
        with self.sessions.begin() as s:
            lc.raise_alert(s, site=site, home=None, rule=Rule.SERVICE_UNREACHABLE,
                           priority=Priority.LOW, at=self.now(), table=self.table,
                           detail={"service": f"notify:{channel}"}, subject=f"notify:{channel}")
        log.error("notification channel %s unreachable for %.0f s: technical alert raised",
                  channel, self.channel_down_after_s)
        self.wake.set()

    def _clear_channel_down(self, site: str, channel: str) -> None:
        with self.sessions.begin() as s:
            lc.auto_resolve(s, site, None, Rule.SERVICE_UNREACHABLE, self.now(),
                            f"notify:{channel} delivers again", subject=f"notify:{channel}")

    # -- loop ----------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event, poll_s: float,
                  classes: tuple[bool, ...] = (True, False)) -> None:
        """Deliver notices as they fall due, never a batch at a time.

        Life-safety notices have their own ``PARALLEL`` delivery slots and are fetched
        on every pass, so receivers of welfare notices that hang until their timeout
        can never hold up an alarm. Each finished delivery wakes the loop: what waited
        for a slot is fetched at once. ``classes``: which notices this worker delivers
        (True: those of life-safety alerts; the alarm process takes those, the rules
        process the others).
        """
        # per class (True: life-safety): notice id -> its delivery task
        in_flight: dict[bool, dict[int, asyncio.Task[None]]] = {True: {}, False: {}}
        slots = {True: asyncio.Semaphore(PARALLEL), False: asyncio.Semaphore(PARALLEL)}

        async def one(job: Job, high: bool, send: bool) -> None:
            try:
                async with slots[high]:
                    await (self._deliver(job) if send else self._hold(job))
            except Exception:
                log.exception("notice %d: delivery pass failed; it stays queued", job.id)
            finally:
                self._done(job)
                in_flight[high].pop(job.id, None)
                self.wake.set()

        try:
            while not stopping.is_set():
                self.wake.clear()
                for high in classes:
                    room = QUEUED - len(in_flight[high])
                    if room <= 0:
                        continue
                    # both classes: an alert whose priority rose moves its notices over
                    busy = frozenset([*in_flight[True], *in_flight[False]])
                    try:
                        jobs = await asyncio.to_thread(self._due, high=high, limit=room,
                                                       exclude=busy)
                    except Exception:
                        log.exception("outbox pass failed; retrying")
                        jobs = []
                    for job in self._probes_first(jobs):
                        name = f"{'alarm' if high else 'notice'}-{job.id}"
                        in_flight[high][job.id] = asyncio.create_task(
                            one(job, high, self._may_send(job)), name=name)
                waiter = asyncio.ensure_future(self.wake.wait())
                stop = asyncio.ensure_future(stopping.wait())
                await asyncio.wait([waiter, stop], timeout=poll_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stop.cancel()
        finally:
            # Deliveries under way get a moment to finish; the rest stay queued (at least
            # once: a notice cut off after sending is sent again, receivers dedup by id).
            tasks = [*in_flight[True].values(), *in_flight[False].values()]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
