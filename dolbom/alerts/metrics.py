"""Prometheus metrics of the alerts service (counts and latencies are metrics, not logs)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Life-safety stages are judged against a 250 ms end-to-end goal (DESIGN.md §7).
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AlertsMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.alarms = Counter("dolbom_alerts_life_safety_events_total",
                              "Life-safety events journalled and acknowledged to the device",
                              registry=r)
        self.alarm_stage = Histogram(
            "dolbom_alerts_life_safety_stage_seconds",
            "Life-safety path by stage: queued (received → handled), journal (rules + "
            "durable write), ack (ack to the device published)", ["stage"], buckets=_FAST,
            registry=r)
        self.alarm_process_exits = Counter(
            "dolbom_alerts_alarm_process_exits_total",
            "Times the alarm process exited unexpectedly (and was restarted)", registry=r)
        self.alarm_retries = Counter("dolbom_alerts_life_safety_retries_total",
                                     "Life-safety events whose journal write had to be retried",
                                     registry=r)
        self.alarm_unrouted = Counter(
            "dolbom_alerts_life_safety_unrouted_total",
            "Life-safety events from a device with no home, raised for its site", registry=r)
        self.alarm_undecodable = Counter(
            "dolbom_alerts_life_safety_undecodable_total",
            "Life-safety events whose payload failed validation, raised from the topic alone, "
            "by reason", ["reason"], registry=r)
        self.alarm_dropped = Counter(
            "dolbom_alerts_life_safety_dropped_total",
            "Messages on life-safety topics dropped: no valid site or device in the topic "
            "(bad_topic), or neither the device nor the site in the registry (unknown_site)",
            ["reason"], registry=r)
        self.stream_messages = Counter("dolbom_alerts_stream_messages_total",
                                       "Messages of the QoS 0 stream evaluated by the rules",
                                       registry=r)
        self.actions = Counter("dolbom_alerts_rule_actions_total",
                               "Rule actions stored, by kind (raise, clear, suppressed)",
                               ["kind"], registry=r)
        self.notices = Counter("dolbom_alerts_notices_total",
                               "Notification attempts by channel and result", ["channel", "result"],
                               registry=r)
        self.notice_delay = Histogram(
            "dolbom_alerts_notice_delay_seconds",
            "Queued notice → delivery confirmed by its channel, by alert priority",
            ["priority"], buckets=_FAST, registry=r)
        self.homes = Gauge("dolbom_alerts_homes", "Homes whose rules are evaluated", registry=r)
        self.timer_heap = Gauge("dolbom_alerts_timer_entries", "Pending rule deadlines",
                                registry=r)
        self.mqtt_up = Gauge("dolbom_alerts_mqtt_up", "1 while the session is connected",
                             ["session"], registry=r)
        self.service_up = Gauge(
            "dolbom_alerts_dependency_up",
            "1 while a dependency answers (database, influxdb, broker)", ["service"],
            registry=r)
        self.loop_lag = Histogram("dolbom_alerts_loop_lag_seconds",
                                  "How late the event loop runs a 100 ms timer", buckets=_FAST,
                                  registry=r)


async def measure_loop_lag(hist: Histogram, stopping: asyncio.Event) -> None:
    """How late the event loop runs a 100 ms timer (an alarm waits as long for its turn)."""
    while not stopping.is_set():
        t = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 0.1)
        hist.observe(max(0.0, time.monotonic() - t - 0.1))
