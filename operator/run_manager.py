"""The runs one operator drives: an asyncio task per WorkflowRun, fed by kopf's watch events.

Why not a kopf daemon (or change handlers) per WorkflowRun, as before: a daemon
makes kopf keep a finalizer on every object (added, then removed: two PATCHes
per run) and change handlers make it write progress and last-handled
annotations (two or three more); every one of those writes comes back as a
watch event to process. Measured on the seed workflow: 8.9 apiserver writes per
run with the daemon against 3 now (the API's create and at most two status
patches). `kopf.on.event` handlers store nothing on the object: kopf still does
the watching (with reconnects), login, liveness and dispatch, and this manager
does the rest in memory:

- an event for an unfinished run that is not running here starts it, from that
  body. At start-up kopf lists every WorkflowRun, so every unfinished run is
  resumed, from the status it has;
- a run that ended here is never started again by a later (stale) event while
  this operator lives; neither is one still running (its status lives in memory
  and its writer retries failed writes from there);
- a retry the API asked for (`spec.retryRequest`, not yet in the status's `retries`)
  starts a finished run again, once: the id of the retry it carries out is remembered,
  so a stale event still showing the request cannot start it a second time;
- `spec.cancelRequested` cancels it; a DELETED event (or a deletionTimestamp,
  when another finalizer holds the object) stops it and its TTL wait;
- a finished run with `ttlSecondsAfterFinished` gets a task that deletes it in time.

Why no finalizer is needed: nothing must happen before a WorkflowRun may go.
Its Jobs are owned by it (the garbage collector deletes them); in-process
attempts are stopped when the deletion is observed; if the operator is down
then, nothing of the run is running anywhere. Why no progress or diff-base
annotation is needed: the run's status subresource is its progress (task
phases, attempts, nextAttemptAt), which is all a new operator needs to resume.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stageflow.kube import ObjectKey, is_deleted
from stageflow.kube.resource import pending_retry
from stageflow.operator.context import OperatorContext, RunControl
from stageflow.operator.metrics import RUNS_ACTIVE
from stageflow.operator.run_driver import drive

logger = logging.getLogger(__name__)


class RunManager:
    def __init__(self, ctx: OperatorContext) -> None:
        self._ctx = ctx
        self._runs: dict[ObjectKey, tuple[RunControl, asyncio.Task[None]]] = {}
        self._ended: set[ObjectKey] = set()  # runs this operator drove to their end (or expired)
        self._retried: dict[ObjectKey, str] = {}  # the last retry this operator carried out
        self._stopping = False

    @property
    def running(self) -> int:
        return len(self._runs)

    def control(self, namespace: str, name: str) -> RunControl | None:
        found = self._runs.get(ObjectKey(namespace, name))
        return found[0] if found is not None else None

    def observe(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """One watch event (or a listing's object) of a WorkflowRun."""
        metadata = obj.get("metadata", {})
        key = ObjectKey.of(metadata)
        found = self._runs.get(key)
        if deleted or is_deleted(obj):
            self._ended.discard(key)
            self._retried.pop(key, None)
            if found is not None:
                found[0].delete()
            return
        if found is not None:
            control = found[0]
            control.generation = metadata.get("generation", control.generation)
            spec = obj.get("spec", {})
            retry = pending_retry(obj)
            if retry is not None and control.finished and self._retried.get(key) != retry["id"]:
                self._retried[key] = retry["id"]  # ended, waiting out its TTL: again
                control.retry(obj)
                return
            control.hold(suspended=bool(spec.get("suspend")))
            control.decide(spec.get("approvals") or {})
            if spec.get("cancelRequested"):
                control.cancel(force=bool(spec.get("forceCancel")))
            return
        retry = pending_retry(obj)
        if retry is not None and self._retried.get(key) != retry["id"] and not self._stopping:
            self._ended.discard(key)
            self._retried[key] = retry["id"]
            self._start(key, obj)
            return
        if key in self._ended or self._stopping:
            return
        status = obj.get("status") or {}
        ttl = obj.get("spec", {}).get("ttlSecondsAfterFinished")
        if status.get("phase") in ("Succeeded", "Failed", "Cancelled") and ttl is None:
            self._ended.add(key)
            return
        self._start(key, obj)

    def _start(self, key: ObjectKey, obj: dict[str, Any]) -> None:
        control = RunControl(*key, generation=obj.get("metadata", {}).get("generation"))
        spec = obj.get("spec", {})
        control.hold(suspended=bool(spec.get("suspend")))
        control.decide(spec.get("approvals") or {})
        if spec.get("cancelRequested"):
            control.cancel(force=bool(spec.get("forceCancel")))
        task = asyncio.create_task(drive(ctx=self._ctx, obj=obj, control=control), name=key[1])
        self._runs[key] = (control, task)
        RUNS_ACTIVE.inc()
        task.add_done_callback(lambda done: self._finished(key, done))

    def _finished(self, key: ObjectKey, task: asyncio.Task[None]) -> None:
        control, _ = self._runs.pop(key)
        RUNS_ACTIVE.dec()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("run %s/%s failed in the operator", *key, exc_info=error)
            return  # not marked ended: the next event of it starts it again
        if not control.deleted.is_set():
            self._ended.add(key)

    async def stop(self) -> None:
        """The operator is exiting: stop every run, leaving its status for the next one."""
        self._stopping = True
        tasks = [task for _, task in self._runs.values()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # Bounded: a run that does not stop must not keep the operator (and the Lease's
        # hand-over) waiting; it is named, with where it waits, for its bug report.
        _, stuck = await asyncio.wait(tasks, timeout=self._ctx.shutdown_write_seconds + 5)
        for task in stuck:
            where = "".join(f"\n  {frame}" for frame in task.get_stack(limit=8))
            logger.error("run %s did not stop when cancelled; left behind at:%s", task, where)
