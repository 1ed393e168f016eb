"""The status sink of a WorkflowRun: coalesced merge patches to its status subresource.

Why a writer of its own, and not a coalescing wrapper that raises: the status
held in memory is the truth while the run's operator lives. A write that fails
(the apiserver away, restarting, overloaded) is not the run's failure: the run
goes on, and the writer keeps trying, from the newest status in memory, with
backoff, until the apiserver takes it. So a task never runs again because a
status write failed, and nothing restarts a run from a stale body.

- Coalesced: the first change opens a window of `interval` seconds (longer for a big
  run: `_window`); every change
  in it goes out in one patch carrying every task that changed (each task's
  entry written whole, unset fields as null; other tasks untouched). The run's
  final status closes the window at once. So a change reaches the apiserver
  within `interval` plus one write, under any load.
- One log line per outage, not per attempt: the `Outage` shared by every run of
  an operator logs a WARNING when writes start failing and an INFO when one
  succeeds again.
- A run that is gone (404, or deleted) stops being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from stageflow.engine import RunPhase, RunStatus
from stageflow.kube import KubeClient, KubeError, ObjectKey, StoredTasks, status_patch
from stageflow.kube.resource import NOTHING_STORED
from stageflow.models.retry import RetryPolicy
from stageflow.models.status import utcnow
from stageflow.operator.kube_events import RunKubeEvents
from stageflow.operator.metrics import STATUS_PATCH_SECONDS, STATUS_PATCHES, RunMetrics
from stageflow.store import RunStore

logger = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.2
ENTRIES_PER_SECOND = 20_000  # a big run's flush window: a second per this many task entries
RETRY_MAX_SECONDS = 5.0


# A status write that fails is tried again, without limit, with this backoff.
WRITE_RETRY = RetryPolicy(initial_interval=RETRY_FIRST_SECONDS, maximum_interval=RETRY_MAX_SECONDS)


class Outage:
    """Failures of one kind of write, across every run of an operator, logged once when
    they start and once when they end (not once per attempt or per run). `failing` and
    `recovered` say what fails; the first gets the error, the second how long it lasted
    and how many attempts failed."""

    def __init__(
        self,
        failing: str = "status writes to the apiserver fail (%s); retrying from memory "
        f"with backoff (up to {RETRY_MAX_SECONDS:g}s) until it answers",
        recovered: str = "status writes succeed again after %.1fs (%d failed attempts)",
    ) -> None:
        self._failing, self._recovered = failing, recovered
        self._since: float | None = None
        self._failures = 0

    def failed(self, error: Exception) -> None:
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(self._failing, error)

    def succeeded(self) -> None:
        if self._since is not None:
            logger.info(self._recovered, time.monotonic() - self._since, self._failures)
            self._since, self._failures = None, 0


# Log saves of every run of the process: Redis away fails them all at once.
LOG_SAVES = Outage(
    "task logs are not kept while the store fails: %s",
    "task logs are kept again after %.1fs (%d failed saves)",
)


class StatusWriter:
    """The StatusSink of one run in the operator."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        *,
        interval: float,
        generation: Callable[[], int | None],
        outage: Outage,
        logs: RunStore | None = None,
        events: RunKubeEvents | None = None,
        stored: StoredTasks = NOTHING_STORED,
    ) -> None:
        """`stored`: how the WorkflowRun holds its task map now (what the first patch
        changes from)."""
        self._kube = kube
        self._stored = stored
        self._certain = False  # `stored` is what a read said, not what this writer wrote
        self._namespace = namespace
        self._name = name
        self._interval = interval
        self._generation = generation
        self._outage = outage
        self._logs = logs
        self._events = events
        self._status: RunStatus | None = None
        self._pending: set[str] = set()
        self._logs_pending: dict[str, str] = {}  # task ID -> its latest log, not yet saved
        self._published = 0  # publishes so far; the run-level fields change with each
        self._written = 0  # the publishes that the last successful write covered
        self._dirty = asyncio.Event()
        self._final = asyncio.Event()  # the final status was published
        self._hurry = asyncio.Event()  # write now, not at the end of the window
        self._progress = asyncio.Condition()  # notified after each successful write
        self._done = asyncio.Event()  # ... and written (or the run is gone)
        self._loop: asyncio.Task[None] | None = None
        self._phase: RunPhase | None = None
        self._since: datetime = utcnow()
        self.patches = 0
        self._metrics = RunMetrics()

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        """Queue a write; with `final`, return once it is written (or the run is gone)."""
        self._status = status
        self._pending |= changed
        self._metrics.published(status, changed)
        if self._events is not None:
            self._events.published(status, changed, final=final)
        self._published += 1
        if self._done.is_set():
            return
        if status.phase is not self._phase:
            self._phase, self._since = status.phase, utcnow()
        if final:
            self._final.set()
            self._hurry.set()
        self._wake()
        if final:
            await self._done.wait()

    async def written(self) -> None:
        """Return once what was published so far is in the WorkflowRun (or the run is
        gone): written at once, not at the end of the window, and waited for through an
        apiserver outage, since what waits (an atMostOnce attempt) must not start before."""
        target = self._published
        self._hurry.set()
        self._wake()
        async with self._progress:
            await self._progress.wait_for(lambda: self._written >= target or self._done.is_set())

    def _wake(self) -> None:
        self._dirty.set()
        if self._loop is None:
            self._loop = asyncio.create_task(self._write_forever(), name=f"status {self._name}")

    async def record_log(self, task_id: str, text: str) -> None:
        """In-process tasks' output goes to Redis (not the WorkflowRun: etcd is no log store),
        gathered like status changes and written just before the status patch of the same
        flush: one Redis write per flush, not one per task, and a task's log is in Redis
        before the status that says it ended."""
        if self._logs is None or self._done.is_set():
            return
        self._logs_pending[task_id] = text
        self._wake()

    def gone(self) -> None:
        """The WorkflowRun was deleted: write nothing more."""
        self._done.set()
        if self._events is not None:
            self._events.settle(post=False)
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()

    async def flush(self) -> None:
        """One write of what is pending, now (the operator is stopping; errors are logged)."""
        self.close()
        if self._events is not None and not self._done.is_set():
            self._events.settle(post=True)
        if self._loop is not None:
            await asyncio.gather(self._loop, return_exceptions=True)
        if not self._done.is_set():
            try:
                await self._write()
            except KubeError as error:
                logger.warning("last status of %s/%s not written: %s", *self._key(), error)

    def _key(self) -> ObjectKey:
        return ObjectKey(self._namespace, self._name)

    async def _write_forever(self) -> None:
        failures = 0
        while True:
            await self._dirty.wait()
            if not self._final.is_set() and not self._hurry.is_set() and failures == 0:
                with contextlib.suppress(TimeoutError):  # the window; the final status ends it
                    async with asyncio.timeout(self._window()):
                        await self._hurry.wait()
            self._hurry.clear()
            self._dirty.clear()
            try:
                written = await self._write()
            except KubeError as error:
                failures += 1
                self._outage.failed(error)
                self._dirty.set()
                await asyncio.sleep(WRITE_RETRY.delay(failures))
                continue
            except Exception:  # a bug: said loudly, and tried again rather than lost
                failures += 1
                logger.exception("status of %s/%s not written; retrying", *self._key())
                self._dirty.set()
                await asyncio.sleep(WRITE_RETRY.delay(failures))
                continue
            failures = 0
            self._outage.succeeded()
            if not written:
                logger.info("WorkflowRun %s/%s is gone; status not written", *self._key())
                self._done.set()
                await self._notify()
                return
            await self._notify()
            if self._final.is_set() and self._written == self._published:
                if self._logs_pending:
                    continue  # recorded while the last write was out: one more
                self._done.set()
                return

    def _window(self) -> float:
        """The flush window: `interval`, longer for a big run (a second per
        ENTRIES_PER_SECOND entries). Each write of a big run folds its whole task map and
        each watch event of it makes the mirror read it whole, so their number per run
        follows the clock, at a cost per write that follows its size."""
        entries = len(self._status.tasks) if self._status is not None else 0
        return max(self._interval, entries / ENTRIES_PER_SECOND)

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _write(self) -> bool:
        """Save gathered logs, then patch the status if it changed since the last write;
        False if the WorkflowRun is gone.
        Both are taken together, before the first await: a task records its log before
        its end is published, so the logs taken cover every task the patch ends, and
        whatever comes in while the logs are saved goes out with the next write."""
        logs, self._logs_pending = self._logs_pending, {}
        if self._status is None or self._written == self._published:
            await self._save_logs(logs)
            return True
        changed, self._pending = frozenset(self._pending), set()
        covered = self._published
        await self._save_logs(logs)
        try:
            patch, stored = status_patch(
                self._status,
                changed,
                observed_generation=self._generation(),
                condition_since=self._since,
                stored=self._stored,
                certain=self._certain,
                run_id=self._name,
            )
            with STATUS_PATCH_SECONDS.time():
                patched = await self._kube.patch_run_status(self._namespace, self._name, patch)
        except BaseException:
            self._pending |= changed  # written again, from the newest status, next time
            self._certain = False  # it may have been applied: what the object holds is unsure
            STATUS_PATCHES.labels(result="error").inc()
            raise
        STATUS_PATCHES.labels(result="ok").inc()
        self._stored, self._certain = stored, True
        self.patches += 1
        self._written = covered
        return patched

    async def _save_logs(self, logs: dict[str, str]) -> None:
        """Logs are a courtesy, like Events: whatever keeps them from Redis (away, read-only,
        out of memory) is logged and the run goes on; it never holds the status up."""
        if not logs or self._logs is None:
            return
        try:
            await self._logs.save_logs(self._name, logs)
        except Exception as error:
            LOG_SAVES.failed(error)
        else:
            LOG_SAVES.succeeded()
