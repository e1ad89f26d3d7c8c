"""A retained alarm on the broker (TESTPLAN F-17): services that restart get it again
on every subscription, and must not tell anyone again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from dolbom.protocol import Envelope, encode_event
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, Alert
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS


async def test_retained_alarm_is_not_told_again_after_restarts(
        stack: Stack, tmp_path: Path) -> None:
    """F-17: a button press published with the retain flag is journalled and told once;
    ingest and the alerts service restarted twice (each time the broker hands them the
    retained press again) tell nobody again and store no second point."""
    async with chaos.webhook_receiver() as rec:
        pw = chaos.care_home(stack, "f17", "hf17", {"btn-f17": "button"}, rec.url)
        settings = chaos.alerts_settings(stack)
        async with chaos.device_client(stack, "btn-f17", pw["btn-f17"]) as dev:
            await dev.publish(chaos.TOPICS.event("f17", "btn-f17", "button"),
                              encode_event(Envelope(1, 7, chaos.unique_now_ms(), 2)), qos=1,
                              retain=True)
        for round_ in range(3):
            async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path,
                                                                  client_id="ingest-f17")) as ing, \
                    chaos.running_alerts(settings, chaos.Clock()) as svc:
                await chaos.eventually(lambda: svc.alarms_journalled >= 1
                                       and ing.snapshot().messages >= 1
                                       and ing.snapshot().pending == 0, 15,
                                       f"the retained press handled (round {round_})")
                await chaos.eventually(lambda: len(chaos.told(rec, "button")) == 2, 10, "told")
    assert chaos.told(rec, "button") == [("responder", "btn-f17"), ("worker", "btn-f17")]
    chaos.told_once(rec)
    with session_factory(stack.database_url)() as s:
        assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 1
        (alert,) = s.scalars(select(Alert).where(Alert.device_id == "btn-f17")).all()
        assert alert.count == 1
    assert stack.influx_admin().count(
        "SELECT count(seq) FROM event WHERE device='btn-f17'", "care") == 1
