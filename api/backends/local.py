"""The local backend: runs workflows in the API process, keeps their state in a store.

The default, so stageflow runs on a machine with no cluster. With a Redis store
any number of API replicas serve as one: each run executes in the replica that
accepted it, its status goes to Redis, and any replica reads, lists and streams
it. A cancel or delete received by another replica reaches the owner through
the store's control channel; a delete also makes the owner's next status write
fail, which stops the run even if that message were lost.

Runs are not durable here: a run whose API process dies stays as its last
status said. The Kubernetes backend (WorkflowRun + operator) is the durable one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Collection
from typing import Any

from stageflow.api.backends.catalog import Catalog
from stageflow.api.backends.common import (
    check_decision,
    compile_off_loop,
    retry_plan,
    stored_log,
    stream_run,
)
from stageflow.api.backends.local_schedules import LocalScheduleHost
from stageflow.api.errors import (
    InvalidRequestError,
    RunConflictError,
    RunFinishedError,
    RunNotFoundError,
)
from stageflow.engine import (
    CoalescingSink,
    Executor,
    InProcessExecutor,
    RunPhase,
    RunStatus,
    TaskRegistry,
    WorkflowRequest,
    WorkflowRunner,
)
from stageflow.engine.admission import RunQueue, order_score
from stageflow.engine.approval import NotWaitingError
from stageflow.engine.cache import RunCache
from stageflow.engine.config import EngineSettings
from stageflow.engine.plan import Plan
from stageflow.engine.records import new_record
from stageflow.engine.retry import retried_status
from stageflow.engine.scheduler import Scheduler
from stageflow.models.records import RunEvent, RunOrigin, RunRecord
from stageflow.models.status import Decision, utcnow
from stageflow.store import Control, Cursor, RunPage, RunStore, StoreUnavailableError

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


class _StoreSink:
    """Writes a run's status to the store; a write refused (run deleted) stops the run."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self.runner: WorkflowRunner | None = None

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        written = await self._store.update_status(self._run_id, status, changed)
        if not written and not final and self.runner is not None:
            self.runner.cancel("Cancelled: the run was deleted", force=True)

    async def written(self) -> None:
        return None  # `publish` has stored it

    async def record_log(self, task_id: str, text: str) -> None:
        await self._store.save_logs(self._run_id, {task_id: text})


def _hold(runner: WorkflowRunner, *, suspended: bool) -> None:
    if suspended:
        runner.suspend()
    else:
        runner.resume()


def runs_here(plan: Plan) -> None:
    """The local backend runs tasks in-process only: a Job task is a 400 (also when a
    template or a schedule that holds one is saved)."""
    for node in plan.tasks.values():
        if node.executor is Executor.JOB:
            raise InvalidRequestError(
                f"Task {node.id} uses executor 'job', which needs the kubernetes backend"
            )


class LocalBackend:
    def __init__(
        self,
        store: RunStore,
        registry: TaskRegistry,
        settings: EngineSettings,
        *,
        schedules: bool = True,
    ) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings
        self._executor = InProcessExecutor(registry, max_threads=settings.max_threads)
        self._admission = store.admission(lease_seconds=settings.admission_lease_seconds)
        self._results = store.result_cache(
            max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes
        )
        self._runs: dict[str, tuple[WorkflowRunner, asyncio.Task[RunStatus]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._scheduling: asyncio.Task[None] | None = None
        poll = settings.schedule_poll_seconds
        self._schedule_host = (
            LocalScheduleHost(self, store, poll_seconds=poll) if schedules else None
        )
        self.scheduler = (
            Scheduler(
                self._schedule_host,
                poll_seconds=poll,
                idle_seconds=poll,
                transient=(StoreUnavailableError, RunConflictError),
            )
            if self._schedule_host is not None
            else None
        )
        self.catalog = Catalog(
            store.templates(keep=settings.template_revision_history),
            store.schedules(),
            registry=registry,
            settings=settings,
            nudge=self.scheduler.nudge if self.scheduler is not None else None,
            validate=runs_here,
        )

    async def start(self) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen_for_control(ready))
        await ready.wait()
        if self.scheduler is not None:
            self._scheduling = asyncio.create_task(self.scheduler.run_forever())

    async def close(self) -> None:
        for background in (self._listener, self._scheduling):
            if background is not None:
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        if self._schedule_host is not None:
            await self._schedule_host.release()
        for runner, _ in self._runs.values():
            runner.cancel("Cancelled: the API process that ran it shut down")
        tasks = [task for _, task in self._runs.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        self._executor.close()
        await self._store.close()

    async def submit(
        self,
        request: WorkflowRequest,
        *,
        submitted_by: str | None,
        origin: RunOrigin | None = None,
        run_id: str | None = None,
    ) -> RunRecord:
        plan = await compile_off_loop(request, registry=self._registry, settings=self._settings)
        runs_here(plan)
        record = new_record(plan, submitted_by=submitted_by, run_id=run_id, origin=origin)
        if run_id is not None:  # a schedule slot's: whoever claims it first creates it
            existing = await self._store.get(run_id)
            if existing is not None:
                return existing
            if not await self._store.claims().claim(run_id):
                raise RunConflictError(f"Run {run_id} is being created by another replica")
        await self._store.create(record)
        self._start(plan, record)
        return record

    async def retry(
        self,
        run_id: str,
        *,
        from_task: str | None,
        params: dict[str, Any] | None,
        requested_by: str | None,
    ) -> RunRecord:
        record = await self.get(run_id)
        plan = await retry_plan(
            record,
            from_task=from_task,
            params=params,
            registry=self._registry,
            settings=self._settings,
        )
        after = record.status.retries[-1].id if record.status.retries else "first"
        if not await self._store.claim_retry(run_id, after):
            raise RunConflictError("A retry of this run is already under way")
        status = retried_status(
            plan,
            record.status,
            retry_id=str(uuid.uuid4()),
            at=utcnow(),
            by=requested_by,
            from_task=from_task,
            params=params,
        )
        retried = record.model_copy(
            update={"spec": plan.spec, "status": status, "cancel_requested": False}
        )
        await self._store.create(retried)
        self._start(plan, retried)
        return retried

    def _start(self, plan: Plan, record: RunRecord) -> None:
        """Run `record` (new, or reset by a retry) in this process."""
        sink = _StoreSink(self._store, record.run_id)
        runner = WorkflowRunner(
            plan,
            executors={Executor.INPROCESS: self._executor},
            sink=CoalescingSink(sink, interval=self._settings.status_flush_seconds),
            status=record.status,
            cache=RunCache(self._results, run_id=record.run_id),
            queue=RunQueue(
                self._admission,
                record.run_id,
                order=order_score(
                    plan.spec.priority,
                    record.created_at,
                    aging_seconds=self._settings.priority_aging_seconds,
                ),
                preempt=self._preempt,
            ),
        )
        sink.runner = runner
        task = asyncio.create_task(runner.run(), name=f"run {record.run_id}")
        self._runs[record.run_id] = (runner, task)
        task.add_done_callback(lambda _: self._runs.pop(record.run_id, None))

    async def _preempt(self, run_id: str) -> None:
        """Cancel a run holding a key that a `cancelInProgress` run needs."""
        with contextlib.suppress(RunNotFoundError, RunFinishedError):
            await self.cancel(run_id)

    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord:
        record = await self._store.get(run_id, folded=folded)
        if record is None:
            raise RunNotFoundError()
        return record

    async def task_phases(self, run_id: str) -> dict[str, str]:
        phases = await self._store.task_phases(run_id)
        if phases is None:
            raise RunNotFoundError()
        return phases

    async def list(self, *, phase: RunPhase | None, limit: int, cursor: Cursor | None) -> RunPage:
        return await self._store.list(phase=phase, limit=limit, cursor=cursor)

    async def cancel(self, run_id: str, *, force: bool = False) -> RunRecord:
        record = await self.get(run_id)
        if record.status.phase.finished:
            raise RunFinishedError(record.status.phase.value)
        await self._store.mark_cancel_requested(run_id)
        record.cancel_requested = True
        await self._stop(run_id, "Cancelled by request", force=force)
        return record

    async def decide(self, run_id: str, task_id: str, decision: Decision) -> RunRecord:
        record = await self.get(run_id)
        check_decision(record, task_id, decision)
        owned = self._runs.get(run_id)
        if owned is None:  # another replica runs it: it applies the first answer it gets
            await self._store.send_control(
                Control(action="decide", run_id=run_id, task=task_id, decision=decision)
            )
        elif not owned[0].decide(task_id, decision):
            raise NotWaitingError(f"Task {task_id} was decided already")
        return record

    async def hold(self, run_id: str, *, suspended: bool) -> RunRecord:
        record = await self.get(run_id)
        if record.status.phase.finished:
            raise RunFinishedError(record.status.phase.value)
        owned = self._runs.get(run_id)
        if owned is not None:
            runner = owned[0]
            _hold(runner, suspended=suspended)
            # read-your-writes: the flag is in the store before the answer, not a flush later
            await self._store.update_status(run_id, runner.status, frozenset())
            record.status = runner.status.model_copy(deep=True)
        else:
            action = "suspend" if suspended else "resume"
            await self._store.send_control(Control(action=action, run_id=run_id))
        return record

    async def delete(self, run_id: str) -> None:
        if not await self._store.delete(run_id):
            raise RunNotFoundError()
        await self._stop(run_id, "Cancelled: the run was deleted", force=True)

    async def task_log(self, run_id: str, task_id: str) -> str:
        record = await self.get(run_id)
        return await stored_log(self._store, record, task_id)

    async def task_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        record = await self.get(run_id)
        return await self._store.get_logs(run_id, [t for t in task_ids if t in record.status.tasks])

    async def events(self, run_id: str) -> AsyncIterator[RunRecord | RunEvent]:
        async for item in stream_run(
            self._store, run_id, lambda: self._store.get(run_id, folded=True)
        ):
            yield item

    async def readiness(self) -> dict[str, str]:
        await self._store.ping()
        return {"store": "ok"}

    async def _stop(self, run_id: str, message: str, *, force: bool = False) -> None:
        owned = self._runs.get(run_id)
        if owned is not None:
            owned[0].cancel(message, force=force)
        else:
            await self._store.send_control(Control(action="cancel", run_id=run_id, force=force))

    async def _listen_for_control(self, ready: asyncio.Event) -> None:
        """Cancel requests sent by other replicas for runs this one executes."""
        while True:
            try:
                async with self._store.control() as messages:
                    ready.set()
                    async for message in messages:
                        owned = self._runs.get(message.run_id)
                        if owned is not None and message.action == "decide":
                            if message.task is not None and message.decision is not None:
                                owned[0].decide(message.task, message.decision)
                        elif owned is not None and message.action != "cancel":
                            _hold(owned[0], suspended=message.action == "suspend")
                        elif owned is not None:
                            deleted = await self._store.get(message.run_id) is None
                            owned[0].cancel(
                                "Cancelled: the run was deleted"
                                if deleted
                                else "Cancelled by request",
                                force=message.force or deleted,
                            )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("control channel lost; resubscribing")
                ready.set()
                await asyncio.sleep(1.0)
