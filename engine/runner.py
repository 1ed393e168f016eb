"""The runner: executes a plan's DAG and keeps its status.

One coroutine (`run`) owns the schedule; each started task is an asyncio task
of its own that runs its attempts (retries, backoff, timeout) and writes only
its own status entry. Finished tasks wake the scheduler through one event, and
dependency counters with a ready queue keep a wake O(what changed), so a stage
of a thousand tasks costs no more per task than a stage of three.

Rules (docs/request.md, "Semantics" and "Data between tasks"): a task starts when every task it
depends on succeeded (or was skipped by its `when`, or failed with `continueOn: {failed:
true}`: both count as done, and give null outputs); a failed, cancelled or otherwise
skipped dependency skips it. A tolerated failure neither fails fast nor fails the run.
A task whose `when` is false is Skipped.
A `forEach` task runs an instance per item (NAME[i]) and succeeds when they all
do, its outputs the list of theirs; an `until` task runs again until its
condition holds or `maxIterations` is reached. Parallelism bounds how many
attempts run at once, instances included. With `failFast` (default) a
failure stops new starts and skips what has not started. Cancellation cancels
running attempts and marks the rest Cancelled. The run's timeout fails the
running attempts and skips the rest. A runner given a previous status resumes:
finished tasks stay as they are, and a task that was running is attempted again
unless its executor can re-attach to the attempt under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import logging
from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from stageflow.engine.admission import Claim, Place, RunQueue, run_claims, task_claims
from stageflow.engine.approval import message_of, timed_out
from stageflow.engine.cache import RunCache, reused
from stageflow.engine.cache_keys import CacheKeyError
from stageflow.engine.conditions import ConditionError
from stageflow.engine.expressions import ExpressionError
from stageflow.engine.interfaces import Attempt, StatusSink, TaskExecutor, TaskResult
from stageflow.engine.plan import Plan, PlannedTask
from stageflow.engine.templates import Reference, Resolver, TemplateError, lookup, render
from stageflow.models.request import Executor, ItemCount
from stageflow.models.status import (
    Decision,
    QueueStatus,
    RunPhase,
    RunStatus,
    TaskPhase,
    TaskStatus,
    utcnow,
)

logger = logging.getLogger(__name__)


class _Stop(enum.Enum):
    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"
    SHUTDOWN = "shutdown"


_NO_LIMIT = contextlib.nullcontext()
# Instances of one forEach under way at once, whatever the run's parallelism: each is an
# asyncio task while it runs, so this bounds a big fan-out's memory (docs/big-runs.md).
INSTANCES_IN_FLIGHT = 1000


def _shown(key: str) -> str:
    """A key as users wrote it: without the `run:`/`task:` kind it is counted under."""
    return key.split(":", 1)[1]


def _size(task_id: str, outputs: Any) -> int:
    """What `outputs` take where they are stored: their JSON, and the task id they are kept
    under (a big run's folded group keeps its members' outputs by id)."""
    if outputs is None:
        return 0
    return len(json.dumps(outputs, separators=(",", ":"))) + len(task_id) + 4


def _failure(what: str, failed: list[str], status: RunStatus) -> str:
    """`Task X failed: its message (and N more)`."""
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{what} {failed[0]} failed: {status.tasks[failed[0]].message}{more}"


def initial_status(plan: Plan) -> RunStatus:
    """A fresh status with every task Pending, for storing before the run starts."""
    status = RunStatus(
        tasks={
            task_id: TaskStatus(executor=node.executor.value)
            for task_id, node in plan.tasks.items()
        }
    )
    status.refresh_progress()
    return status


class WorkflowRunner:
    """Runs one workflow run. Create, then `await run()`; `cancel()` from any coroutine."""

    def __init__(
        self,
        plan: Plan,
        *,
        executors: Mapping[Executor, TaskExecutor],
        sink: StatusSink,
        status: RunStatus | None = None,
        queue: RunQueue | None = None,
        cache: RunCache | None = None,
    ) -> None:
        self._plan = plan
        self._queue = queue  # concurrency keys: who holds them (engine/admission.py)
        self._cache = cache  # recorded results of `cache` tasks (engine/cache.py)
        self._options = plan.options
        self._executors = executors
        self._sink = sink
        self._status = status.model_copy(deep=True) if status is not None else initial_status(plan)
        for task_id, node in plan.tasks.items():
            self._status.tasks.setdefault(task_id, TaskStatus(executor=node.executor.value))
        self._changed: set[str] = set(plan.tasks)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._finished: list[str] = []
        self._wake = asyncio.Event()
        self._stop: _Stop | None = None
        self._stop_message = ""
        self._failed_fast: str | None = None
        self._dependants: dict[str, list[str]] = defaultdict(list)
        self._blockers: dict[str, set[str]] = {}
        self._ready: deque[str] = deque()
        limit = self._options.parallelism
        self._slots = asyncio.Semaphore(limit) if limit is not None else None
        self._final = [task_id for task_id, node in plan.tasks.items() if node.final]
        self._in_finally = self._status.main_phase is not None
        self._force = False
        self._suspended = bool(self._status.suspended)
        self._go = asyncio.Event()  # set while not suspended: what forEach instances wait on
        if not self._suspended:
            self._go.set()
        self._run_changed = False  # a run-level field changed (no task did): publish anyway
        self._decisions: dict[str, Decision] = {}  # approvals' answers, until applied
        self._decided: dict[str, asyncio.Event] = {}
        self._output_sizes = {
            tid: _size(tid, task.outputs) for tid, task in self._status.tasks.items()
        }
        self._output_total = sum(self._output_sizes.values())
        self._done = sum(1 for task in self._status.tasks.values() if task.phase.finished)
        self._build_graph()

    @property
    def status(self) -> RunStatus:
        return self._status

    def cancel(self, message: str = "Cancelled by request", *, force: bool = False) -> None:
        """Cancel the run: running attempts are cancelled, the rest become Cancelled. The
        `finally` tasks still run afterwards, and a plain cancel while they run leaves them
        be; `force` cancels them too (Argo's `terminate` against its `stop`)."""
        if self._status.phase.finished:
            return
        self.resume()  # a cancelled run is not held: what it cancels, and finally, go on
        self._force = self._force or force
        if self._in_finally and not force:
            return
        if self._stop is _Stop.CANCELLED:
            if force:
                self._drain_pending(TaskPhase.CANCELLED, "cancelled before it started", final=True)
            return
        if self._stop is not None and not self._in_finally:
            return
        self._stop, self._stop_message = _Stop.CANCELLED, message
        self._drain_pending(TaskPhase.CANCELLED, "cancelled before it started", final=force)
        for child in self._running.values():
            child.cancel()
        self._wake.set()

    def suspend(self) -> None:
        """No new task (nor forEach instance, nor finally task) starts until `resume`;
        running ones finish. The run's timeout still counts."""
        if self._status.phase.finished or self._suspended:
            return
        self._suspended = self._status.suspended = True
        self._go.clear()
        self._run_changed = True
        self._wake.set()

    def resume(self) -> None:
        if not self._suspended:
            return
        self._suspended, self._status.suspended = False, None
        self._run_changed = True
        self._go.set()
        self._wake.set()

    async def run(self) -> RunStatus:
        """Run to the end and return the final status (published as `final`)."""
        status = self._status
        if status.phase.finished:
            return status
        claims = self._run_claims()
        try:
            if claims and not await self._admitted(claims):
                # cancelled while queued: it never started, so neither do its finally tasks
                self._drain_pending(TaskPhase.CANCELLED, self._stop_message, final=True)
            return await self._run()
        finally:
            if claims and self._queue is not None:
                await self._released(self._queue.run_id, claims)

    async def _released(self, holder: str, claims: list[Claim]) -> None:
        """Give keys back; a store that cannot answer now lets them lapse (Redis leases)."""
        assert self._queue is not None
        try:
            await self._queue.admission.release(holder, claims)
        except Exception as error:  # a result or a stop must not be lost to it
            logger.warning("could not give back %s's concurrency keys: %s", holder, error)

    def _run_claims(self) -> list[Claim]:
        if self._queue is None or not self._options.concurrency:
            return []
        return run_claims(self._plan.spec, limit=self._plan.condition_limit)

    async def _admitted(self, claims: list[Claim]) -> bool:
        """Wait for the run's turn under its concurrency keys (phase Queued meanwhile, with
        its keys and position); False if it was cancelled first. A run that was under way
        before a restart takes its keys back at once: it held them."""
        queue = self._queue
        assert queue is not None
        status = self._status
        held_before = status.phase is not RunPhase.PENDING and status.phase is not RunPhase.QUEUED
        preempted: set[str] = set()
        while self._stop is None:
            try:
                place = await queue.admission.acquire(
                    queue.run_id, claims, queue.order, force=held_before
                )
            except Exception as error:  # the store away: wait, ask again
                logger.warning("cannot ask for %s's concurrency keys: %s", queue.run_id, error)
                place = Place(0, claims[0].key)  # 0: no strategy applies on a guess
                await asyncio.sleep(queue.poll_seconds)
            if place is None:
                if status.queue is not None:
                    status.queue, self._run_changed = None, True
                return True
            claim = next(claim for claim in claims if claim.key == place.key)
            if place.position > 0 and claim.strategy == "cancelNewest":  # 0: not yet (grace)
                self.cancel(
                    f"Cancelled: concurrency key {_shown(claim.key)} is at its limit "
                    f"({claim.max}) and its strategy is cancelNewest"
                )
                break
            if place.position > 0 and claim.strategy == "cancelInProgress" and queue.preempt:
                await self._preempt(queue, claim, preempted)
            keys = [_shown(claim.key) for claim in claims]
            if status.queue is None or status.queue.position != place.position:
                since = status.queue.since if status.queue is not None else utcnow()
                status.phase = RunPhase.QUEUED
                status.queue = QueueStatus(keys=keys, position=place.position, since=since)
                self._run_changed = True
                await self._publish(final=False)
            self._wake.clear()
            changed = asyncio.ensure_future(queue.admission.changed())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {changed, woken},
                    timeout=queue.poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
                woken.cancel()
        status.queue, self._run_changed = None, True
        return False

    async def _preempt(self, queue: RunQueue, claim: Claim, preempted: set[str]) -> None:
        """cancelInProgress: cancel every run holding the key that this run has not asked
        to cancel yet (so the newest of several wins); a cancel that fails is asked again."""
        assert queue.preempt is not None
        try:
            holders = await queue.admission.holders(claim.key)
        except Exception as error:
            logger.warning("cannot read who holds %s: %s", _shown(claim.key), error)
            return
        for holder in holders:
            if holder == queue.run_id or holder in preempted or "/" in holder:
                continue  # itself, asked already, or a task's hold
            try:
                await queue.preempt(holder)
                preempted.add(holder)
            except Exception as error:
                logger.warning("could not cancel %s for %s: %s", holder, queue.run_id, error)

    async def _run(self) -> RunStatus:
        status = self._status
        if status.started_at is None:
            status.started_at = utcnow()
        if self._stop is None:
            status.phase = RunPhase.RUNNING
        deadline = self._deadline()
        try:
            await self._publish(final=False)
            while True:
                self._start_ready()
                if not self._running:
                    if self._suspended and self._has_work():
                        await self._wait(deadline if self._stop is None else None)
                        await self._publish(final=False)
                        continue
                    if not self._begin_finally():
                        break
                    deadline = self._deadline()
                    await self._publish(final=False)
                    continue
                await self._wait(deadline if self._stop is None else None)
                self._reap()
                await self._publish(final=False)
        except asyncio.CancelledError:
            await self._shutdown()
            raise
        self._conclude()
        await self._publish(final=True)
        return status

    # -- the schedule -----------------------------------------------------------------

    def _build_graph(self) -> None:
        tasks = self._status.tasks
        for task_id, node in self._plan.tasks.items():
            for dependency in node.depends_on:
                self._dependants[dependency].append(task_id)
        resumed: list[str] = []
        fresh: list[str] = []
        for task_id, node in self._plan.tasks.items():
            self._blockers[task_id] = {
                dependency for dependency in node.depends_on if not self._satisfied(dependency)
            }
            phase = tasks[task_id].phase
            if phase in (TaskPhase.RUNNING, TaskPhase.WAITING):
                resumed.append(task_id)
            elif (
                phase is TaskPhase.PENDING
                and not self._blockers[task_id]
                and self._startable(task_id)
            ):
                fresh.append(task_id)
        self._ready.extend(resumed + fresh)  # re-attach what was under way first
        for task_id in self._plan.tasks:
            if tasks[task_id].phase.finished and not self._satisfied(task_id):
                self._propagate(task_id)

    def _satisfied(self, task_id: str) -> bool:
        """Done, as far as the tasks that depend on it are concerned."""
        status = self._status.tasks[task_id]
        return (
            status.phase is TaskPhase.SUCCEEDED
            or status.skipped_by_condition
            or self._tolerated(task_id)
        )

    def _tolerated(self, task_id: str) -> bool:
        """Failed, in a task (or an instance of one) marked `continueOn: {failed: true}`."""
        if self._status.tasks[task_id].phase is not TaskPhase.FAILED:
            return False
        node = self._node_of(task_id)
        return node is not None and node.spec.tolerates_failure

    def _node_of(self, task_id: str) -> PlannedTask | None:
        """The planned task of a task id, or of an instance id (NAME[i]: its forEach's)."""
        return self._plan.tasks.get(task_id.split("[", 1)[0])

    def _startable(self, task_id: str) -> bool:
        """Not a `finally` task, or the main graph has ended."""
        return self._in_finally or not self._plan.tasks[task_id].final

    def _begin_finally(self) -> bool:
        """The main graph has ended: note its outcome and start the `finally` tasks (unless
        the run was cancelled with force). False if there is nothing more to start."""
        if self._in_finally or not self._final:
            return False
        if self._force:
            self._drain_pending(
                TaskPhase.CANCELLED, "not started: the run was cancelled with force", final=True
            )
            return False
        self._status.main_phase, self._status.message = self._outcome()
        self._in_finally = True
        self._stop, self._stop_message, self._failed_fast = None, "", None
        self._ready.extend(
            task_id
            for task_id in self._final
            if self._status.tasks[task_id].phase is TaskPhase.PENDING
            and not self._blockers[task_id]
        )
        self._wake.set()
        return True

    def _deadline(self) -> float | None:
        if self._in_finally:  # the finally tasks' own budget, from when they (re)started
            budget = self._options.finally_timeout_seconds
            return None if budget is None else asyncio.get_running_loop().time() + budget
        timeout = self._options.timeout_seconds
        if timeout is None:
            return None
        started = self._status.started_at or utcnow()
        elapsed = (utcnow() - started).total_seconds()
        return asyncio.get_running_loop().time() + timeout - elapsed

    def _under_way(self, task_id: str) -> bool:
        """Running or waiting in the status (an attempt or a wait a restart interrupted)."""
        return self._status.tasks[task_id].phase in (TaskPhase.RUNNING, TaskPhase.WAITING)

    def _has_work(self) -> bool:
        """Something would start if the run were not suspended."""
        return bool(self._ready) or bool(self._final and not self._in_finally and not self._force)

    def _start_ready(self) -> None:
        while self._ready and self._stop is None and self._failed_fast is None:
            if self._suspended and not self._under_way(self._ready[0]):
                break  # what was under way before a restart is followed even so
            task_id = self._ready.popleft()
            if task_id in self._running or self._status.tasks[task_id].phase.finished:
                continue
            child = asyncio.create_task(self._run_task(self._plan.tasks[task_id]), name=task_id)
            child.add_done_callback(functools.partial(self._on_done, task_id))
            self._running[task_id] = child

    def _on_done(self, task_id: str, _child: asyncio.Task[None]) -> None:
        self._finished.append(task_id)
        self._wake.set()

    async def _wait(self, deadline: float | None) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                await self._wake.wait()
        except TimeoutError:
            self._time_out()
        self._wake.clear()

    def _reap(self) -> None:
        finished, self._finished = self._finished, []
        for task_id in finished:
            child = self._running.pop(task_id)
            if not child.cancelled() and child.exception() is not None:
                error = child.exception()
                logger.error("runner bug while running %s", task_id, exc_info=error)
                self._end(task_id, TaskPhase.FAILED, f"internal error: {error!r}")
            self._propagate(task_id)
            if self._status.tasks[task_id].phase is TaskPhase.FAILED:
                self._fail_fast(task_id)

    def _propagate(self, task_id: str) -> None:
        """Unblock dependants of a success; skip (transitively) dependants of anything else."""
        stack = [task_id]
        while stack:
            upstream = stack.pop()
            phase = self._status.tasks[upstream].phase
            satisfied = self._satisfied(upstream)
            for dependant in self._dependants.get(upstream, ()):
                if self._status.tasks[dependant].phase.finished:
                    continue
                blockers = self._blockers[dependant]
                blockers.discard(upstream)
                if satisfied:
                    pending = self._status.tasks[dependant].phase is TaskPhase.PENDING
                    if not blockers and pending and self._startable(dependant):
                        self._ready.append(dependant)
                else:
                    self._end(
                        dependant, TaskPhase.SKIPPED, f"upstream task {upstream} {phase.lower()}"
                    )
                    stack.append(dependant)

    def _fail_fast(self, task_id: str) -> None:
        node = self._node_of(task_id)
        if self._tolerated(task_id) or (node is not None and node.final):
            return  # finally tasks all run, whatever another one does
        if self._options.fail_fast and self._failed_fast is None:
            self._failed_fast = task_id
            self._propagate(task_id)  # its own dependants say which upstream failed
            self._drain_pending(
                TaskPhase.SKIPPED, f"not started: task {task_id} failed and failFast is on"
            )

    def _drain_pending(self, phase: TaskPhase, message: str, *, final: bool = False) -> None:
        """End every task not started: of the main graph, or (`final`) the finally tasks too."""
        self._ready.clear()
        for task_id, status in self._status.tasks.items():
            # a cancel or timeout also ends what a restart left under way and this runner
            # has not picked up again (it never will: nothing starts after a stop)
            left = (
                self._stop is not None and self._under_way(task_id) and task_id not in self._running
            )
            if status.phase is TaskPhase.PENDING or (left and "[" not in task_id):
                node = self._node_of(task_id)
                if final or node is None or not node.final:
                    self._end(task_id, phase, message)

    def _time_out(self) -> None:
        if self._stop is not None:
            return
        self._stop = _Stop.TIMED_OUT
        if self._in_finally:
            budget = self._options.finally_timeout_seconds or 0
            self._stop_message = f"finally tasks timed out after {budget:g}s"
            self._drain_pending(
                TaskPhase.SKIPPED, "not started: the finally tasks timed out", final=True
            )
        else:
            self._stop_message = f"Run timed out after {self._options.timeout_seconds:g}s"
            self._drain_pending(TaskPhase.SKIPPED, "not started: the run timed out")
        for child in self._running.values():
            child.cancel()

    async def _shutdown(self) -> None:
        """The host is going away: stop attempts but leave their status for a resume."""
        self._stop = _Stop.SHUTDOWN
        for child in self._running.values():
            child.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _failed(self, *, final: bool) -> list[str]:
        """Failed tasks (and instances) of the main graph, or of the finally tasks, that
        were not tolerated."""
        found = []
        for task_id, task in self._status.tasks.items():
            node = self._node_of(task_id)
            if node is None or node.final is not final:
                continue
            if task.phase is TaskPhase.FAILED and not self._tolerated(task_id):
                found.append(task_id)
        return found

    def _outcome(self) -> tuple[RunPhase, str | None]:
        """The main graph's outcome, from how it stopped and its tasks' phases."""
        failed = self._failed(final=False)
        tolerated = [
            tid for tid in self._plan.tasks if tid not in self._final and self._tolerated(tid)
        ]
        if self._stop is _Stop.CANCELLED:
            return RunPhase.CANCELLED, self._stop_message
        if self._stop is _Stop.TIMED_OUT:
            return RunPhase.FAILED, self._stop_message
        if failed:
            return RunPhase.FAILED, _failure("Task", failed, self._status)
        if tolerated:
            past = _failure("task", tolerated, self._status)
            return RunPhase.SUCCEEDED, f"Succeeded past a tolerated failure: {past}"
        return RunPhase.SUCCEEDED, None

    def _conclude(self) -> None:
        """The run's phase: the main graph's outcome, made Failed by a finally task that
        failed or ran out of time (Cancelled if they were cancelled with force)."""
        status = self._status
        status.suspended = None  # an ended run holds nothing
        tolerated = [tid for tid in self._plan.tasks if self._tolerated(tid)]
        status.tolerated_failures = tolerated or None
        if not self._in_finally:
            status.phase, status.message = self._outcome()
        else:
            phase, message = status.main_phase or RunPhase.SUCCEEDED, status.message
            failed = self._failed(final=True)
            trouble = None
            if self._stop is _Stop.CANCELLED:
                phase, trouble = RunPhase.CANCELLED, self._stop_message
            elif self._stop is _Stop.TIMED_OUT:
                phase, trouble = RunPhase.FAILED, self._stop_message
            elif failed:
                phase, trouble = RunPhase.FAILED, _failure("Finally task", failed, status)
            if trouble is not None:
                message = trouble if message is None else f"{message}; {trouble}"
            status.phase, status.message = phase, message
        status.finished_at = utcnow()

    # -- one task ---------------------------------------------------------------------

    def decide(self, task_id: str, decision: Decision) -> bool:
        """A person's answer to approval task `task_id`; False if it already has one (the
        first answer stands). Kept if the task is not waiting yet (a run being resumed)."""
        node = self._plan.tasks.get(task_id)
        if node is None or node.spec.approval is None:
            return False
        status = self._status.tasks[task_id]
        if status.decision is not None or task_id in self._decisions or status.phase.finished:
            return False
        self._decisions[task_id] = decision
        self._decided.setdefault(task_id, asyncio.Event()).set()
        return True

    async def _await_decision(self, node: PlannedTask) -> None:
        """An approval task: Waiting until decided or timed out, then Succeeded with the
        approver's outputs, or Failed."""
        spec = node.spec.approval
        assert spec is not None
        status = self._status.tasks[node.id]
        if status.decision is None:
            status.phase, status.message = TaskPhase.WAITING, "waiting for approval"
            status.started_at = status.started_at or utcnow()
            self._touch(node.id)
            decided = self._decided.setdefault(node.id, asyncio.Event())
            left = None
            if spec.timeout_seconds is not None:
                waited = (utcnow() - status.started_at).total_seconds()
                left = max(0.0, spec.timeout_seconds - waited)
            try:
                async with asyncio.timeout(left):
                    await decided.wait()
                status.decision = self._decisions[node.id]
            except TimeoutError:
                status.decision = timed_out(spec)
            except asyncio.CancelledError:
                self._stopped(node.id)
                return
        decision = status.decision
        if decision.approved:
            outputs = decision.outputs or {}
            if self._within_budget(node.id, outputs):
                self._end(node.id, TaskPhase.SUCCEEDED, message_of(decision), outputs)
        else:
            self._end(node.id, TaskPhase.FAILED, message_of(decision))
            self._fail_fast(node.id)

    def _stopped(self, task_id: str) -> None:
        """A task's coroutine was cancelled: re-raise for a shutdown (the status stays for
        a resume), else end the task as the run's stop says."""
        if self._stop is _Stop.SHUTDOWN or self._stop is None:
            raise asyncio.CancelledError
        if self._stop is _Stop.CANCELLED:
            self._end(task_id, TaskPhase.CANCELLED, self._stop_message)
        else:
            self._end(task_id, TaskPhase.FAILED, f"stopped: {self._stop_message}")

    async def _run_task(self, node: PlannedTask) -> None:
        status = self._status.tasks[node.id]
        executor = self._executors.get(node.executor)
        if executor is None:
            self._end(node.id, TaskPhase.FAILED, f"no {node.executor.value!r} executor here")
            return
        if node.when is not None and status.when_result is None:
            try:
                status.when_result = await node.when.evaluate_async(self._resolver(node))
            except ConditionError as error:
                self._end(node.id, TaskPhase.FAILED, f"when: {error}")
                return
            if not status.when_result:
                self._end(
                    node.id, TaskPhase.SKIPPED, f"when condition is false: {node.when.source}"
                )
                return
        if node.spec.approval is not None:
            await self._await_decision(node)
            return
        if node.spec.for_each is not None:
            await self._fan_out(node, executor)
            return
        under_way = self._under_way(node.id)  # before a restart: followed even if suspended
        async with self._slot():
            if not under_way:
                await self._go.wait()  # suspended while it waited for a slot
            if status.phase.finished:  # skipped or cancelled while it waited for a slot
                return
            await self._run_attempts(node, node.id, executor)
            if status.phase is TaskPhase.FAILED:
                self._fail_fast(node.id)  # before the slot passes to a task that must not start

    async def _fan_out(self, node: PlannedTask, executor: TaskExecutor) -> None:
        """One instance per item, NAME[i], in parallel under the run's parallelism."""
        status = self._status.tasks[node.id]
        status.phase, status.executor = TaskPhase.RUNNING, executor.name
        status.started_at = status.started_at or utcnow()
        self._touch(node.id)
        try:
            items = self._items(node)
        except TemplateError as error:
            self._end(node.id, TaskPhase.FAILED, f"forEach: {error}")
            return
        ids = [f"{node.id}[{index}]" for index in range(len(items))]
        entries = len(self._status.tasks) + sum(1 for i in ids if i not in self._status.tasks)
        if entries > self._plan.max_instances:
            self._end(
                node.id,
                TaskPhase.FAILED,
                f"forEach: {len(items)} items would make {entries} task instances "
                f"(at most {self._plan.max_instances} per run, STAGEFLOW_MAX_TASK_INSTANCES)",
            )
            return
        for instance in ids:
            if instance not in self._status.tasks:
                self._status.tasks[instance] = TaskStatus(executor=node.executor.value)
                self._touch(instance)
        try:
            await self._run_instances(node, ids, items, executor)
        except asyncio.CancelledError:  # instances still queued for a slot, or suspended
            self._stopped(node.id)
            return
        instances = [self._status.tasks[instance] for instance in ids]
        failed = sum(1 for instance in instances if instance.phase is TaskPhase.FAILED)
        if failed:
            self._end(node.id, TaskPhase.FAILED, f"{failed} of {len(ids)} instances failed")
        elif any(instance.phase is not TaskPhase.SUCCEEDED for instance in instances):
            phase = TaskPhase.CANCELLED if self._stop is _Stop.CANCELLED else TaskPhase.SKIPPED
            self._end(node.id, phase, "not every instance ran")
        else:
            # Stored only if some instance has outputs: ten thousand nulls would be 50 KB of
            # the WorkflowRun for nothing (`_instance_outputs` gives the list back).
            outputs = [instance.outputs for instance in instances]
            kept = outputs if any(output is not None for output in outputs) else None
            if self._within_budget(node.id, kept):
                self._end(node.id, TaskPhase.SUCCEEDED, None, kept)

    async def _run_instances(
        self, node: PlannedTask, ids: list[str], items: list[Any], executor: TaskExecutor
    ) -> None:
        """The instances, at most INSTANCES_IN_FLIGHT under way at once (the run's
        parallelism bounds them further). An instance is a coroutine only from its start
        to its end, so a fan-out of 100,000 holds a thousand, not 100,000; one a resumed
        run finished costs nothing."""
        window = asyncio.Semaphore(INSTANCES_IN_FLIGHT)
        started: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []  # of instances that ended before the last gather

        async def one(instance: str, item: Any) -> None:
            try:
                await self._run_instance(node, instance, item, executor)
            finally:
                window.release()

        def ended(child: asyncio.Task[None]) -> None:
            started.discard(child)
            if not child.cancelled() and child.exception() is not None:
                failures.append(cast(BaseException, child.exception()))

        try:
            for instance, item in zip(ids, items, strict=True):
                if failures:
                    raise failures[0]  # a bug in an instance is the fan-out's, not lost
                if self._status.tasks[instance].phase.finished:
                    continue  # resumed: it already ran
                await window.acquire()
                child = asyncio.create_task(one(instance, item))
                started.add(child)
                child.add_done_callback(ended)
            await asyncio.gather(*started)
            if failures:
                raise failures[0]
        except BaseException:
            for child in started:
                child.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise

    def _items(self, node: PlannedTask) -> list[Any]:
        if isinstance(node.spec.for_each, ItemCount):
            items: list[Any] = list(range(node.spec.for_each.count))
        elif node.for_each is None:
            items = list(node.spec.for_each or [])
        else:
            items = self._resolver(node)(node.for_each)
            if not isinstance(items, list):
                raise TemplateError(f"{node.for_each} is {type(items).__name__}, not a list")
        if len(items) > self._plan.max_items:
            raise TemplateError(
                f"{len(items)} items (at most {self._plan.max_items}, STAGEFLOW_MAX_FOREACH_ITEMS)"
            )
        return items

    async def _run_instance(
        self, node: PlannedTask, instance: str, item: Any, executor: TaskExecutor
    ) -> None:
        status = self._status.tasks[instance]
        if status.phase.finished:
            return  # resumed: it already ran
        under_way = self._under_way(instance)
        async with self._slot():
            if not under_way:
                await self._go.wait()  # a suspended run starts no instance either
            if status.phase.finished or self._stop is not None:
                return
            if self._failed_fast is not None:
                self._end(
                    instance, TaskPhase.SKIPPED, f"not started: task {self._failed_fast} failed"
                )
                return
            await self._run_attempts(node, instance, executor, item=item)
            if status.phase is TaskPhase.FAILED:
                self._fail_fast(instance)

    async def _run_attempts(
        self, node: PlannedTask, task_id: str, executor: TaskExecutor, *, item: Any = None
    ) -> None:
        """A `cache` task's recorded result if there is one (engine/cache.py), else its
        attempts, and then its success recorded. A task resumed under way is not looked up
        (its attempt goes on), though its success is recorded."""
        status = self._status.tasks[task_id]
        cache, spec = self._cache, node.spec.cache
        if cache is None or spec is None:
            await self._execute_attempts(node, task_id, executor, item=item)
            return
        found = None
        try:
            params = render(
                node.spec.params,
                self._resolver(node, item=item, iteration=0),
                max_bytes=self._plan.max_rendered_bytes,
            )
            refresh = bool(spec.refresh or self._options.refresh)
            found = await cache.lookup(
                node,
                params,
                item=item,
                instance=task_id != node.id,
                refresh=refresh or status.phase is TaskPhase.RUNNING,
            )
        except TemplateError:
            pass  # its attempts fail on it, saying so
        except CacheKeyError as error:
            self._end(task_id, TaskPhase.FAILED, str(error))
            return
        except asyncio.CancelledError:
            self._stopped(task_id)
            return
        if status.phase.finished:
            return  # skipped (failFast) or cancelled while it looked
        if found is not None and found.hit is not None:
            if self._within_budget(task_id, found.hit.outputs):
                self._end(
                    task_id, TaskPhase.SUCCEEDED, reused(status, found.hit), found.hit.outputs
                )
            return
        await self._execute_attempts(node, task_id, executor, item=item)
        if found is not None and status.phase is TaskPhase.SUCCEEDED:
            await cache.record(found.key, node, task_id, status)

    async def _execute_attempts(
        self, node: PlannedTask, task_id: str, executor: TaskExecutor, *, item: Any = None
    ) -> None:
        """Attempts (retries with backoff) of one task or instance, iterated if it has `until`."""
        status = self._status.tasks[task_id]
        resumed = status.phase is TaskPhase.RUNNING
        # Resumed in a retry's backoff: attempt `attempts` failed (it counts), the next is
        # due at `next_attempt_at`. Resumed otherwise: the attempt under way was interrupted,
        # not failed, so it is re-attached, or run again without costing a retry.
        backing_off = resumed and status.next_attempt_at is not None
        reattach = resumed and not backing_off and executor.can_resume(node, status)
        number = status.attempts if reattach else status.attempts + 1
        if not resumed:  # a fresh run of attempts: those before it (a retry's) do not count
            status.attempts_before = status.attempts or None
        used = status.attempts - (status.attempts_before or 0)  # of this run of attempts
        interrupted = resumed and not backing_off and not reattach and used > 0
        if interrupted and node.spec.delivery == "atMostOnce":
            # the interrupted attempt may have done its work: it counts as a failed one
            tries = node.spec.retries + 1 - used
            if tries <= 0:
                self._end(
                    task_id,
                    TaskPhase.FAILED,
                    f"attempt {status.attempts} was interrupted (its host stopped) and is not "
                    "run again (delivery: atMostOnce)",
                )
                return
            await self._record_log(
                task_id,
                status.attempts,
                "interrupted: its host stopped; it counts as a failed attempt "
                "(delivery: atMostOnce)\n",
            )
        elif backing_off:
            tries = node.spec.retries + 1 - used
        else:
            tries = node.spec.retries + 1 - (max(0, used - 1) if resumed else 0)
        wait = self._backoff_left(status) if backing_off else 0.0
        iteration = status.iterations or 0
        status.phase, status.executor, status.message = TaskPhase.RUNNING, executor.name, None
        status.started_at = status.started_at or utcnow()
        try:
            while True:  # iterations (one, unless the task has `until`)
                resolve = self._resolver(node, item=item, iteration=iteration)
                try:
                    params = render(
                        node.spec.params, resolve, max_bytes=self._plan.max_rendered_bytes
                    )
                except TemplateError as error:
                    self._end(task_id, TaskPhase.FAILED, f"params: {error}")
                    return
                result, number = await self._attempts(
                    node, task_id, executor, params, number, max(1, tries), reattach, wait
                )
                reattach, tries, wait = False, node.spec.retries + 1, 0.0
                if not result.ok:
                    self._end(task_id, TaskPhase.FAILED, result.message)
                    return
                if not self._within_budget(task_id, result.outputs):
                    return
                if node.until is None:
                    self._end(task_id, TaskPhase.SUCCEEDED, result.message, result.outputs)
                    return
                iteration += 1
                status.iterations, status.outputs = iteration, result.outputs
                self._touch(task_id)
                try:
                    done = await node.until.evaluate_async(
                        self._resolver(node, outputs=result.outputs, iteration=iteration - 1)
                    )
                except ConditionError as error:
                    self._end(task_id, TaskPhase.FAILED, f"until: {error}")
                    return
                if done:
                    self._end(task_id, TaskPhase.SUCCEEDED, None, result.outputs)
                    return
                status.attempts_before = number  # the next iteration has its retries anew
                if iteration >= node.spec.iteration_limit:
                    self._end(
                        task_id,
                        TaskPhase.FAILED,
                        f"until condition still false after {iteration} iterations",
                    )
                    return
                number += 1
        except asyncio.CancelledError:
            self._stopped(task_id)

    async def _attempts(
        self,
        node: PlannedTask,
        task_id: str,
        executor: TaskExecutor,
        params: dict[str, Any],
        number: int,
        tries: int,
        reattach: bool,
        wait: float,
    ) -> tuple[TaskResult, int]:
        """Up to `tries` attempts from attempt `number` (the first after `wait` seconds);
        the last result and its number."""
        status = self._status.tasks[task_id]
        if wait > 0:
            await asyncio.sleep(wait)
        for left in range(tries - 1, -1, -1):
            status.attempts, status.next_attempt_at = number, None
            self._touch(task_id)
            if node.spec.delivery == "atMostOnce" and not reattach:
                await self._publish(final=False)  # its start is stored before its body runs
                await self._sink.written()
            attempt = Attempt(
                task=node,
                task_id=task_id,
                number=number,
                status=status,
                params=params,
                resumed=reattach,
                changed=lambda: self._touch(task_id),
                detach=lambda: self._stop is _Stop.SHUTDOWN,
                live_log=functools.partial(self._record_log, task_id, number),
            )
            result = await self._gated(node, executor, attempt)
            if result.log is not None:
                await self._record_log(task_id, number, result.log)
            if result.ok or left == 0 or self._stop is not None:
                return result, number
            delay = node.spec.retry_policy().delay(number)
            status.message = f"attempt {number} failed: {result.message}; retrying in {delay:g}s"
            status.next_attempt_at = utcnow() + timedelta(seconds=delay)
            self._touch(task_id)
            await asyncio.sleep(delay)
            number, reattach = number + 1, False
        raise AssertionError("unreachable: tries >= 1")

    async def _record_log(self, task_id: str, number: int, text: str) -> None:
        await self._sink.record_log(task_id, f"--- attempt {number} ---\n{text}")

    @staticmethod
    def _backoff_left(status: TaskStatus) -> float:
        """Seconds until a resumed task's next attempt is due (0 if it is due already)."""
        if status.next_attempt_at is None:
            return 0.0
        return max(0.0, (status.next_attempt_at - utcnow()).total_seconds())

    async def _gated(
        self, node: PlannedTask, executor: TaskExecutor, attempt: Attempt
    ) -> TaskResult:
        """One attempt, once it holds its task's concurrency keys (across all runs). The task
        stays Running meanwhile (it is under way: a failFast or a cancel treats it as such),
        its message saying which key it waits for and in what place."""
        queue = self._queue
        if queue is None or not node.spec.concurrency:
            return await self._attempt(executor, attempt)
        try:
            claims = task_claims(
                attempt.task_id,
                node.spec.concurrency,
                attempt.params,
                limit=self._plan.condition_limit,
            )
        except ExpressionError as error:
            return TaskResult(ok=False, message=str(error))
        holder = f"{queue.run_id}/{attempt.task_id}"
        status = attempt.status
        waited = False
        try:
            while True:
                try:
                    place = await queue.admission.acquire(
                        holder, claims, queue.order, force=attempt.resumed
                    )
                except Exception as error:  # the store away: ask again
                    logger.warning("cannot ask for %s's concurrency keys: %s", holder, error)
                    place = Place(0, claims[0].key)
                if place is None:
                    break
                where = f"{place.position} in line" if place.position else "starting up"
                message = f"waiting for concurrency key {_shown(place.key)} ({where})"
                if status.message != message:
                    status.message, waited = message, True
                    self._touch(attempt.task_id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(queue.poll_seconds):
                        await queue.admission.changed()
            if waited:
                status.message = None
                self._touch(attempt.task_id)
            return await self._attempt(executor, attempt)
        finally:
            await self._released(holder, claims)

    @staticmethod
    async def _attempt(executor: TaskExecutor, attempt: Attempt) -> TaskResult:
        timeout = attempt.task.spec.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await executor.execute(attempt)
        except TimeoutError:
            return TaskResult(ok=False, message=f"timed out after {timeout:g}s")

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A place among the `parallelism` attempts that may run at once (none: no limit)."""
        return self._slots if self._slots is not None else _NO_LIMIT

    def _within_budget(self, task_id: str, outputs: Any) -> bool:
        """Outputs live in the run's status (a WorkflowRun: etcd), so a run's are bounded.
        What counts is what is stored: a task's latest outputs (an until loop keeps only
        its last iteration's), a forEach task's list as well as its instances', each with
        the id it is kept under."""
        size = _size(task_id, outputs)
        total = self._output_total - self._output_sizes.get(task_id, 0) + size
        if total > self._plan.max_output_bytes:
            limit = self._plan.max_output_bytes // 1024
            self._end(task_id, TaskPhase.FAILED, f"the run's outputs would exceed {limit} KiB")
            return False
        self._output_sizes[task_id], self._output_total = size, total
        return True

    def _resolver(
        self,
        node: PlannedTask,
        *,
        item: Any = None,
        iteration: int | None = None,
        outputs: Any = None,
    ) -> Resolver:
        def resolve(ref: Reference) -> Any:
            if ref.kind == "task" and ref.task is not None:
                upstream = self._status.tasks[ref.task]
                if upstream.skipped_by_condition or upstream.phase is TaskPhase.FAILED:
                    return None  # skipped by its `when`, or failed and tolerated: no outputs
                given = upstream.outputs
                if given is None and self._plan.tasks[ref.task].spec.for_each is not None:
                    given = self._instance_outputs(ref.task)
                return lookup(given, ref.path, what=f"tasks.{ref.task}.outputs")
            if ref.kind == "phase" and ref.task is not None:
                return self._status.tasks[ref.task].phase.value
            if ref.kind == "run":
                if ref.path == ("phase",):
                    main = self._status.main_phase
                    return None if main is None else main.value
                return [
                    tid
                    for tid in self._plan.tasks
                    if tid not in self._final and self._status.tasks[tid].phase is TaskPhase.FAILED
                ]
            if ref.kind == "param":
                return lookup(self._plan.spec.params, ref.path, what="params")
            if ref.kind == "item":
                return lookup(item, ref.path, what="item")
            if ref.kind == "iteration":
                return iteration
            return lookup(outputs, ref.path, what="outputs")

        return resolve

    def _instance_outputs(self, task_id: str) -> list[Any]:
        """A forEach task's outputs when none of its instances had any: a null for each."""
        count = 0
        while f"{task_id}[{count}]" in self._status.tasks:
            count += 1
        return [None] * count

    # -- status -----------------------------------------------------------------------

    def _end(
        self,
        task_id: str,
        phase: TaskPhase,
        message: str | None,
        outputs: Any = None,
    ) -> None:
        status = self._status.tasks.setdefault(task_id, TaskStatus())
        if not status.phase.finished:
            self._done += 1
        status.phase, status.message, status.next_attempt_at = phase, message, None
        if outputs is not None:
            status.outputs = outputs
        status.finished_at = utcnow()
        self._touch(task_id)

    def _touch(self, task_id: str) -> None:
        self._changed.add(task_id)
        self._wake.set()

    async def _publish(self, *, final: bool) -> None:
        if not self._changed and not final and not self._run_changed:
            return
        changed, self._changed, self._run_changed = frozenset(self._changed), set(), False
        self._status.progress = f"{self._done}/{len(self._status.tasks)}"
        await self._sink.publish(self._status, changed, final=final)
