"""The alarm process kept running while the rules process runs (``alarm_process=spawn``):
restarted with backoff if it ever exits, stopped with the service.

One already running (this service was killed or stopped and started again; the alarm
process outlives it by design, dolbom/alerts/alarm/) is watched through its lock, not
started twice, and started again once it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from dolbom.alerts.alarm.lock import ALREADY_RUNNING, alarm_lock_path, lock_holder
from dolbom.alerts.alarm.serve import spawn
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.pause import pause
from dolbom.alerts.settings import AlertsSettings
from dolbom.mqtt import Backoff

log = logging.getLogger("dolbom.alerts")
ADOPTED_CHECK_S = 1.0  # an alarm process this one did not start: checked this often


class AlarmSupervisor:
    def __init__(self, settings: AlertsSettings, metrics: AlertsMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.proc: asyncio.subprocess.Process | None = None  # the one this one started
        self.adopted: int | None = None  # PID of a running one this one did not start

    def pid(self) -> int | None:
        """The alarm process's PID while one runs (0: one whose PID is not known yet)."""
        if self.proc is not None and self.proc.returncode is None:
            return self.proc.pid
        return self.adopted

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = Backoff(0.5, 15.0)  # restarts of a process, not a reconnect
        lock = alarm_lock_path(self.settings)
        while not stopping.is_set():
            holder = await asyncio.to_thread(lock_holder, lock)
            if holder is not None:
                if holder != self.adopted:
                    log.info("alarm process already running (pid %s): watching it", holder)
                self.adopted = holder
                await pause(stopping, ADOPTED_CHECK_S)
                continue
            if self.adopted is not None:
                self.metrics.alarm_process_exits.inc()
                log.error("alarm process %d is gone; starting one", self.adopted)
                self.adopted = None
            try:
                proc = self.proc = await spawn(self.settings)
            except (OSError, ConnectionError) as e:  # e.g. it died before reading its settings
                delay = backoff.next_delay()
                log.error("could not start the alarm process (%s); retrying in %.1f s", e, delay)
                await pause(stopping, delay)
                continue
            log.info("alarm process started (pid %d)", proc.pid)
            done = asyncio.ensure_future(proc.wait())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([done, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not done.done():
                proc.terminate()
                try:
                    await asyncio.wait_for(done, 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                return
            if stopping.is_set():
                return
            if proc.returncode == ALREADY_RUNNING:
                continue  # another started first: watch that one
            self.metrics.alarm_process_exits.inc()
            delay = backoff.next_delay()
            log.error("alarm process exited with %s; restarting in %.1f s", proc.returncode,
                      delay)
            await pause(stopping, delay)
        await self._stop_adopted(lock)

    async def _stop_adopted(self, lock: Path) -> None:
        """Stop, with this service, the alarm process it found running (it was started for
        an earlier run of this service: ``alarm_process=spawn``). The PID is the lock
        holder's, read while the lock is held, so it is that process."""
        pid = await asyncio.to_thread(lock_holder, lock)
        if not pid or pid != self.adopted:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(200):  # its own drain takes seconds; 20 s at most
            if await asyncio.to_thread(lock_holder, lock) is None:
                return
            await asyncio.sleep(0.1)
        log.error("alarm process %d did not stop within 20 s", pid)
