"""Kubernetes Events on a WorkflowRun: what `kubectl describe wfr ID` tells about its run.

Events are a courtesy to whoever looks, never a substitute for the status and
never in the run's way:
- fire and forget: a run puts an Event on a bounded queue and goes on; one
  worker posts them. A full queue (the apiserver slow or away) drops the Event and
  counts it (`stageflow_events_dropped_total`); a failed post is logged once per
  outage and never retried;
- rate-limited per run: the run's start and end always get one; task failures and
  retries share a budget of `events_per_run` per run, and the first one over it
  says that the rest are in the status. A 1,000-task run that fails everywhere
  writes a dozen Events, not 1,000.

Which Events (reason, type): `Started` or `Resumed` (Normal) when this operator
starts the run (Started is held for the status flush interval: a run that ends
within it gets only its end Event, which says when it started); `TaskFailed`
(Warning, with the task's message); `RetryScheduled` (Normal, with the attempt's
failure and the delay); `EventsSuppressed` (Normal, once);
the run's end with reason = its phase (`Succeeded` Normal, `Failed`/`Cancelled` Warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import TypedDict

from prometheus_client import Counter

from stageflow.engine import RunPhase, RunStatus
from stageflow.kube import GROUP, VERSION, KubeClient, KubeError
from stageflow.kube.bodies import KubeEvent
from stageflow.models.status import TaskPhase, TaskStatus

logger = logging.getLogger(__name__)

COMPONENT = "stageflow-operator"
MESSAGE_LIMIT = 1024  # an Event's message is a human's summary; the status has the rest

EVENTS_POSTED = Counter(
    "stageflow_events_posted", "Kubernetes Events posted on WorkflowRuns, by reason.", ["reason"]
)
EVENTS_DROPPED = Counter(
    "stageflow_events_dropped",
    "Events not posted, by cause (queue_full, rate_limited, error).",
    ["cause"],
)


class InvolvedObject(TypedDict):
    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str


def involved(namespace: str, name: str, uid: str) -> InvolvedObject:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "name": name,
        "namespace": namespace,
        "uid": uid,
    }


def event_body(
    about: InvolvedObject, *, reason: str, message: str, warning: bool, now: datetime
) -> KubeEvent:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{about['name']}.{uuid.uuid4().hex[:16]}"},
        "involvedObject": {**about},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class KubeEventRecorder:
    """The operator's one poster of Events: a bounded queue and a worker."""

    def __init__(self, kube: KubeClient, *, queue_size: int = 256) -> None:
        self._kube = kube
        self._queue: asyncio.Queue[tuple[str, KubeEvent]] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def emit(
        self,
        about: InvolvedObject,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        at: datetime | None = None,
    ) -> None:
        """Queue an Event; `at` is when it happened, if earlier than now."""
        body = event_body(about, reason=reason, message=message, warning=warning, now=at or now())
        try:
            self._queue.put_nowait((about["namespace"], body))
        except asyncio.QueueFull:
            EVENTS_DROPPED.labels(cause="queue_full").inc()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._post_forever(), name="stageflow events")

    async def stop(self, *, drain_seconds: float = 2.0) -> None:
        """Post what is queued (for at most `drain_seconds`), then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self._queue.join()
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._worker = None

    async def _post_forever(self) -> None:
        while True:
            namespace, body = await self._queue.get()
            try:
                await self._kube.create_event(namespace, body)
            except KubeError as error:
                EVENTS_DROPPED.labels(cause="error").inc()
                if not self._failing:
                    logger.warning("posting Events fails (%s); dropping them until it works", error)
                self._failing = True
            else:
                EVENTS_POSTED.labels(reason=body["reason"]).inc()
                if self._failing:
                    logger.info("posting Events works again")
                self._failing = False
            finally:
                self._queue.task_done()


def now() -> datetime:
    return datetime.now(UTC)


def _seen(task: TaskStatus) -> tuple[TaskPhase, int, bool]:
    """What makes a task's transition new: its phase, its attempt, whether it waits to retry."""
    return task.phase, task.attempts, task.next_attempt_at is not None


class RunKubeEvents:
    """Which transitions of one run become Events (see the module's docstring)."""

    def __init__(
        self,
        recorder: KubeEventRecorder,
        about: InvolvedObject,
        *,
        initial: RunStatus,
        budget: int,
        hold_start_seconds: float = 0.0,
    ) -> None:
        self._recorder = recorder
        self._about = about
        self._budget = budget
        self._spent = 0
        self._hold = hold_start_seconds
        self._held: tuple[str, datetime, asyncio.TimerHandle] | None = None  # a Started Event
        self._phase = initial.phase
        self._told = {task_id: _seen(task) for task_id, task in initial.tasks.items()}
        if initial.phase is RunPhase.RUNNING:
            self._emit("Resumed", f"resumed by this operator at progress {initial.progress}")

    def published(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        if status.phase is RunPhase.RUNNING and self._phase is RunPhase.PENDING:
            self._start(f"{len(status.tasks)} tasks")
        for task_id in sorted(changed):
            task = status.tasks.get(task_id)
            if task is None:
                continue
            seen = _seen(task)
            if self._told.get(task_id) == seen:
                continue
            self._told[task_id] = seen
            if task.phase is TaskPhase.FAILED:
                self._task_event("TaskFailed", f"task {task_id}: {task.message}", warning=True)
            elif task.phase is TaskPhase.RUNNING and task.next_attempt_at is not None:
                self._task_event("RetryScheduled", f"task {task_id}: {task.message}")
        if final and status.phase.finished and self._phase is not status.phase:
            warning = status.phase is not RunPhase.SUCCEEDED
            detail = status.message or f"{status.progress} tasks finished"
            if self._held is not None:  # ended within the hold: one Event tells both
                _, started, timer = self._held
                timer.cancel()
                self._held = None
                detail += f" (started {started:%H:%M:%S}, {_since(started)} ago)"
            self._emit(status.phase.value, detail, warning=warning)
        self._phase = status.phase

    def _start(self, message: str) -> None:
        """Started is held for `hold_start_seconds`: a run that ends within it gets one
        Event, not two (as it gets one status patch). Each Event is an apiserver write
        and an etcd object: for short runs, half of them said nothing the end does not."""
        if self._hold <= 0:
            self._emit("Started", message)
            return
        timer = asyncio.get_running_loop().call_later(self._hold, self._release)
        self._held = (message, now(), timer)

    def settle(self, *, post: bool) -> None:
        """The run stops here: post a held Started (the operator is stopping, the run did
        start), or drop it (the WorkflowRun is gone: no Event about a deleted object)."""
        if post:
            self._release()
        elif self._held is not None:
            self._held[2].cancel()
            self._held = None

    def _release(self) -> None:
        if self._held is not None:
            message, started, timer = self._held
            timer.cancel()
            self._held = None
            self._emit("Started", message, at=started)

    def _task_event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self._release()  # told before what happened after it
        self._spent += 1
        if self._spent <= self._budget:
            self._emit(reason, message, warning=warning)
            return
        EVENTS_DROPPED.labels(cause="rate_limited").inc()
        if self._spent == self._budget + 1:
            self._emit(
                "EventsSuppressed",
                f"more than {self._budget} task failures and retries: the rest are in "
                "the status only (kubectl get wfr -o yaml)",
            )

    def _emit(
        self, reason: str, message: str, *, warning: bool = False, at: datetime | None = None
    ) -> None:
        self._recorder.emit(self._about, reason=reason, message=message, warning=warning, at=at)


def _since(started: datetime) -> str:
    return f"{(now() - started).total_seconds():.2f}s"
