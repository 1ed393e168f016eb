"""The scheduler's loop (engine/scheduler.py) against an in-memory host, on a virtual clock
(looptime): minutes of slots take milliseconds, and each slot fires exactly once through
status-write conflicts, transient errors and runs that cannot start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stageflow.engine.plan import SpecError
from stageflow.engine.scheduler import ScheduleHost, Scheduler
from stageflow.engine.schedules import Firing, run_id_for
from stageflow.models.schedule import ScheduleRecord, ScheduleSpec, ScheduleStatus
from stageflow.models.status import RunPhase

pytestmark = pytest.mark.looptime

START = datetime(2026, 1, 1, tzinfo=UTC)


def schedule(name: str, *entries: str, **fields: Any) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        uid=f"uid-{name}",
        created_at=START,
        version="1",
        spec=ScheduleSpec(schedule=list(entries), template_ref={"name": "nightly"}, **fields),
    )


class FakeHost:
    """Schedules and runs in memory, with the version checks of the real hosts. Runs end
    at once in `finish_phase`. `fail_writes` / `fail_starts`: the numbers (from 1) of the
    write_status calls that answer a conflict and of the start_run calls that raise."""

    def __init__(self, clock: Callable[[], datetime], *records: ScheduleRecord) -> None:
        self.clock = clock
        self.records = {record.name: record for record in records}
        self.runs: dict[str, RunPhase] = {}
        self.started: list[Firing] = []  # each run created, once
        self.calls: list[tuple[str, str]] = []
        self.read_at: list[float] = []
        self.finish_phase = RunPhase.SUCCEEDED
        self.fail_writes: set[int] = set()
        self.fail_starts: dict[int, Exception] = {}
        self.broken: set[str] = set()  # run ids whose phases cannot be read
        self.unreadable = 0  # schedules() raises this many times
        self.writes = 0
        self.starts = 0

    async def schedules(self) -> list[ScheduleRecord]:
        self.read_at.append((self.clock() - START).total_seconds())
        if self.unreadable:
            self.unreadable -= 1
            raise ConnectionError("store away")
        return [record.model_copy(deep=True) for record in self.records.values()]

    def _bump(self, name: str, **update: Any) -> None:
        current = self.records[name]
        version = str(int(current.version or "0") + 1)
        self.records[name] = current.model_copy(update={**update, "version": version})

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        self.writes += 1
        self.calls.append(("write_status", record.name))
        if self.writes in self.fail_writes or self.records[record.name].version != record.version:
            return False
        self._bump(record.name, status=status)
        return True

    async def pause(self, record: ScheduleRecord, reason: str) -> None:
        self.calls.append(("pause", reason))
        spec = self.records[record.name].spec.model_copy(update={"suspend": True})
        self._bump(record.name, spec=spec)

    async def start_run(self, record: ScheduleRecord, firing: Firing) -> None:
        self.starts += 1
        self.calls.append(("start_run", firing.run_id))
        if self.starts in self.fail_starts:
            raise self.fail_starts[self.starts]
        if firing.run_id not in self.runs:
            self.runs[firing.run_id] = self.finish_phase
            self.started.append(firing)

    async def run_phases(
        self, record: ScheduleRecord, run_ids: list[str]
    ) -> dict[str, RunPhase | None]:
        if self.broken.intersection(run_ids):
            raise ConnectionError("runs away")
        return {run_id: self.runs.get(run_id) for run_id in run_ids}

    async def cancel_run(self, record: ScheduleRecord, run_id: str) -> None:
        self.calls.append(("cancel_run", run_id))

    async def delete_run(self, record: ScheduleRecord, run_id: str) -> None:
        self.calls.append(("delete_run", run_id))
        self.runs.pop(run_id, None)


def test_the_fake_is_a_host(clock: Callable[[], datetime]) -> None:
    host: ScheduleHost = FakeHost(clock)  # mypy checks it against the protocol
    assert isinstance(host, FakeHost)


@pytest.fixture
def clock() -> Callable[[], datetime]:
    """UTC time that moves with the loop's virtual time: START when the test begins (the
    loop is found at the first call, when looptime drives it already)."""
    origin: list[float] = []

    def now() -> datetime:
        loop = asyncio.get_running_loop()
        if not origin:
            origin.append(loop.time())
        return START + timedelta(seconds=loop.time() - origin[0])

    return now


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler.run_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_every_slot_fires_once_through_a_conflict_and_an_error(
    clock: Callable[[], datetime], caplog: pytest.LogCaptureFixture
) -> None:
    host = FakeHost(clock, schedule("tick", "@every 10s"))
    # Starts: 0:10, 0:20 whose status write conflicts, 0:20 again at 0:25 (the run exists
    # already), 0:30, 0:40 which raises, 0:40 again at 0:45, then on time up to 2:00.
    host.fail_writes = {4}
    host.fail_starts = {5: ConnectionError("apiserver away")}
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(120.5)
    slots = [START + timedelta(seconds=10 * k) for k in range(1, 13)]
    assert [firing.scheduled_time for firing in host.started] == slots
    assert [firing.run_id for firing in host.started] == [run_id_for("uid-tick", s) for s in slots]
    assert host.starts == 14  # two slots asked twice, each created once
    status = host.records["tick"].status
    assert status.fired == 12
    assert status.last_scheduled_time == slots[-1]
    assert status.next_scheduled_time == slots[-1] + timedelta(seconds=10)
    assert "apiserver away" in caplog.text


async def test_a_nudge_wakes_the_scheduler(clock: Callable[[], datetime]) -> None:
    host = FakeHost(clock, schedule("daily", "@daily"))
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=3600)
    async with running(scheduler):
        await asyncio.sleep(10)
        scheduler.nudge()
        await asyncio.sleep(1)
    assert host.read_at == [0, 10]


async def test_a_failing_schedule_does_not_stop_the_others(
    clock: Callable[[], datetime], caplog: pytest.LogCaptureFixture
) -> None:
    broken = schedule("broken", "@every 10s")
    broken.status = ScheduleStatus(active=[{"runId": "r0", "scheduledTime": START}])
    host = FakeHost(clock, broken, schedule("fine", "@every 10s"))
    host.broken = {"r0"}
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(30.5)
    assert [f.scheduled_time for f in host.started] == [
        START + timedelta(seconds=s) for s in (10, 20, 30)
    ]
    assert host.read_at == [0, 5, 10, 15, 20, 25, 30]  # the broken one retries every 5 s
    assert "schedule broken: round failed" in caplog.text


async def test_unreadable_schedules_are_read_again_after_the_poll_interval(
    clock: Callable[[], datetime], caplog: pytest.LogCaptureFixture
) -> None:
    host = FakeHost(clock, schedule("tick", "@every 10s"))
    host.unreadable = 2
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(10.5)
    assert host.read_at == [0, 5, 10]
    assert [f.scheduled_time for f in host.started] == [START + timedelta(seconds=10)]
    assert "cannot read the schedules" in caplog.text


async def test_a_slot_that_cannot_start_is_given_up_with_the_reason(
    clock: Callable[[], datetime], caplog: pytest.LogCaptureFixture
) -> None:
    host = FakeHost(clock, schedule("tick", "@every 10s"))
    host.fail_starts = {1: SpecError("template 'nightly' not found")}
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(15)
    status = host.records["tick"].status
    assert status.message == "slot 2026-01-01T00:00:10.000000Z: template 'nightly' not found"
    assert status.active == []
    assert status.fired == 0
    assert status.last_scheduled_time == START + timedelta(seconds=10)
    assert host.started == []
    assert host.starts == 1  # not retried
    async with running(scheduler):
        await asyncio.sleep(10)
    assert [f.scheduled_time for f in host.started] == [START + timedelta(seconds=20)]


async def test_a_failure_pauses_the_schedule_and_the_reason_is_written(
    clock: Callable[[], datetime],
) -> None:
    host = FakeHost(clock, schedule("tick", "@every 10s", pause_on_failure=True))
    host.finish_phase = RunPhase.FAILED
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(60)
    assert [f.scheduled_time for f in host.started] == [START + timedelta(seconds=10)]
    record = host.records["tick"]
    assert record.spec.suspend is True
    assert record.status.message is not None
    assert record.status.message.endswith("failed; paused by pauseOnFailure")
    assert record.status.last_run_phase is RunPhase.FAILED
    assert record.status.missed >= 4
    pauses = [call for call in host.calls if call[0] == "pause"]
    assert len(pauses) == 1


async def test_runs_past_the_history_limit_are_deleted_after_the_status_write(
    clock: Callable[[], datetime],
) -> None:
    host = FakeHost(clock, schedule("tick", "@every 10s", successful_runs_history_limit=1))
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    async with running(scheduler):
        await asyncio.sleep(36)  # the third run, fired at 0:30, is seen ended at 0:35
    first, second, third = (f.run_id for f in host.started)
    deletes = [call for call in host.calls if call[0] == "delete_run"]
    assert deletes == [("delete_run", first), ("delete_run", second)]
    index = host.calls.index(("delete_run", first))
    assert host.calls[index - 1] == ("write_status", "tick")
    assert [run.run_id for run in host.records["tick"].status.recent] == [third]


async def test_run_once_answers_the_earliest_wake(clock: Callable[[], datetime]) -> None:
    host = FakeHost(clock, schedule("soon", "@every 30s"), schedule("later", "@hourly"))
    scheduler = Scheduler(host, clock=clock, poll_seconds=5, idle_seconds=60)
    assert await scheduler.run_once() == START + timedelta(seconds=30)
    empty = Scheduler(FakeHost(clock), clock=clock, poll_seconds=5, idle_seconds=60)
    assert await empty.run_once() == START + timedelta(seconds=60)
