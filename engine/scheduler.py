"""The loop that fires schedules: the operator runs it against Kubernetes, the API's local
backend against its store, both through a `ScheduleHost`.

Each round reads every schedule, asks its runs' phases, computes a `tick` (pure, see
engine/schedules.py) and applies it: cancel, start, pause, write the status, delete. The
status write is conditional on the version read, and comes after the runs exist; a round
whose write fails (a conflict, a crash, an error) is computed again on the next round
from the same status, and starts the same run ids, which the host creates at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from stageflow.engine.plan import SpecError
from stageflow.engine.schedules import Firing, tick
from stageflow.models.schedule import ScheduleRecord, ScheduleStatus
from stageflow.models.status import RunPhase, format_timestamp, utcnow

logger = logging.getLogger(__name__)


class ScheduleHost(Protocol):
    """Where schedules and runs live. Every method may be called again for the same thing
    (a round is retried whole): creating, cancelling and deleting are idempotent."""

    async def schedules(self) -> list[ScheduleRecord]:
        """Every schedule this scheduler serves, each with its `version`."""
        ...

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        """Write `status`, conditional on `record.version`. False: the record changed
        meanwhile (a spec edit, another replica, a `pause` of this round); the next round
        reads it again and recomputes."""
        ...

    async def pause(self, record: ScheduleRecord, reason: str) -> None:
        """Set `spec.suspend` (pauseOnFailure). It may change the version, so that the
        status write after it fails: the next round writes the reason then."""
        ...

    async def start_run(self, record: ScheduleRecord, firing: Firing) -> None:
        """Create the run with id `firing.run_id` (one that exists already is success).
        SpecError: the template or body cannot run; the slot is given up, not retried."""
        ...

    async def run_phases(
        self, record: ScheduleRecord, run_ids: list[str]
    ) -> dict[str, RunPhase | None]:
        """The phase of each of the schedule's runs (None: it does not exist)."""
        ...

    async def cancel_run(self, record: ScheduleRecord, run_id: str) -> None:
        """Cancel the run, if it exists and is going."""
        ...

    async def delete_run(self, record: ScheduleRecord, run_id: str) -> None:
        """Delete the run, if it exists."""
        ...


class Scheduler:
    """Fires the slots of every schedule a host serves, each at most once."""

    def __init__(
        self,
        host: ScheduleHost,
        *,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 5.0,
        idle_seconds: float = 60.0,
        transient: tuple[type[Exception], ...] = (),
    ) -> None:
        """`transient`: what the host raises while its store cannot answer (the apiserver
        or Redis away): logged as one line, not a traceback, and retried like the rest."""
        self._host = host
        self._clock = clock
        self._poll = poll_seconds
        self._idle = idle_seconds
        self._transient = transient
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        """Run a round now (a schedule was created, changed or backfilled). From the loop's
        own thread; a nudge during a round makes another round follow it."""
        self._nudged.set()

    async def run_forever(self) -> None:
        """Rounds until cancelled, each when the earliest schedule needs it or when nudged.
        The wait is computed from `clock`, so a test's virtual clock drives it."""
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # A cancel that some awaited library swallowed (seen with redis-py reading a
                # reply while the API shut down): it still ends the loop.
                raise asyncio.CancelledError
            self._nudged.clear()
            try:
                wake_at = await self.run_once()
            except Exception:
                self._log("cannot read the schedules; trying again in %ss", self._poll)
                wake_at = self._clock() + timedelta(seconds=self._poll)
            delay = (wake_at - self._clock()).total_seconds()
            if delay > 0:
                # asyncio.timeout, not wait_for: on 3.11 a cancel landing as the wait ends
                # was lost inside wait_for, and the loop went on (a shutdown that hung)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._nudged.wait()

    async def run_once(self) -> datetime:
        """One round over every schedule; the earliest time one needs the next. A schedule
        that fails is logged, tried again after `poll_seconds`, and does not stop the others.
        An exception of `schedules()` propagates."""
        records = await self._host.schedules()
        wake_at = self._clock() + timedelta(seconds=self._idle)
        for record in records:
            try:
                wake_at = min(wake_at, await self._serve(record))
            except Exception:
                self._log("schedule %s: round failed; trying again", _name(record))
                wake_at = min(wake_at, self._clock() + timedelta(seconds=self._poll))
        return wake_at

    def _log(self, message: str, *args: object) -> None:
        """From an `except` block: a transient error in a line, anything else with its
        traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, self._transient):
            logger.warning(message + ": %s", *args, error)
        else:
            logger.exception(message, *args)

    async def _serve(self, record: ScheduleRecord) -> datetime:
        """One schedule's round. Any exception but a start's SpecError leaves the status
        unwritten: the next round does it all again from the same status."""
        run_ids = [run.run_id for run in record.status.active]
        phases = await self._host.run_phases(record, run_ids) if run_ids else {}
        now = self._clock()
        result = tick(record, now, phases, poll_seconds=self._poll, idle_seconds=self._idle)
        for run_id in result.cancel:
            await self._host.cancel_run(record, run_id)
        status = result.status
        for firing in result.fire:
            status = await self._start(record, firing, status)
        if not await self._host.write_status(record, status):
            logger.info("schedule %s changed meanwhile; reading it again", _name(record))
            return min(result.wake_at, now + timedelta(seconds=self._poll))
        if result.pause_reason is not None:
            # after the status is written (the failure recorded, the run in `recent`): a
            # pause first would change the version, fail this write, and a resume sent
            # before the next round would be paused again for the same failure
            logger.info("schedule %s: %s", _name(record), result.pause_reason)
            await self._host.pause(record, result.pause_reason)
        for run_id in result.delete:
            await self._host.delete_run(record, run_id)
        return result.wake_at

    async def _start(
        self, record: ScheduleRecord, firing: Firing, status: ScheduleStatus
    ) -> ScheduleStatus:
        """Start one firing. A SpecError (the run cannot run: a template gone, a param
        missing) gives the slot up with the reason in the status: retrying cannot help."""
        try:
            await self._host.start_run(record, firing)
        except SpecError as error:
            message = f"slot {format_timestamp(firing.scheduled_time)}: {error}"
            logger.warning("schedule %s: %s", _name(record), message)
            active = [run for run in status.active if run.run_id != firing.run_id]
            return status.model_copy(
                update={"active": active, "fired": status.fired - 1, "message": message}
            )
        return status


def _name(record: ScheduleRecord) -> str:
    return f"{record.namespace}/{record.name}" if record.namespace else record.name
