"""The kubernetes backend: a run is a WorkflowRun; the operator runs it.

The API keeps no state: submit creates the WorkflowRun (name = run ID) and
answers at once; reads go to the Redis mirror first and fall back to the
WorkflowRun itself on a miss or with Redis down, so answers stay correct while
the mirror is behind or away. What such a read finds is put into Redis, version-checked
as the operator's mirror writes (read repair): otherwise a run read from the WorkflowRun
as Succeeded could read back as Pending a moment later, from a mirror that has only
caught up with the run's creation. Only into a Redis an operator mirrors (its marker is
there), and a run still under way so written expires in a few seconds unless the mirror
writes it: with no live mirror, nothing else would bring it up to date. Cancel sets
`spec.cancelRequested`; delete deletes the WorkflowRun (the operator stops what runs;
owned Jobs go with it); retry, suspend and approve write `spec.retryRequest`,
`spec.suspend` and `spec.approvals`, which the operator carries out.
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
from stageflow.api.errors import (
    NoLogsError,
    RunConflictError,
    RunFinishedError,
    RunNotFoundError,
)
from stageflow.engine import (
    RunPhase,
    TaskRegistry,
    WorkflowRequest,
)
from stageflow.engine.approval import NotWaitingError
from stageflow.engine.config import EngineSettings
from stageflow.engine.output import MAX_LOG_BYTES
from stageflow.engine.records import new_record
from stageflow.kube import (
    KubeClient,
    KubeConflictError,
    is_deleted,
    new_object,
    record_from_object,
)
from stageflow.kube.bodies import WorkflowRun
from stageflow.kube.catalog import KubeSchedules, KubeTemplates
from stageflow.models.folding import entries_of
from stageflow.models.records import RunEvent, RunOrigin, RunRecord
from stageflow.models.status import Decision, format_timestamp, utcnow
from stageflow.store import (
    Cursor,
    RedisMirrorWriter,
    RedisStore,
    RunPage,
    RunStore,
    StoreUnavailableError,
)
from stageflow.store.pages import paginate

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
REPAIR_TTL_SECONDS = 5  # how long a repaired run under way may stand without the mirror


class KubernetesBackend:
    def __init__(
        self,
        kube: KubeClient,
        store: RunStore | None,
        registry: TaskRegistry,
        settings: EngineSettings,
        *,
        namespace: str,
    ) -> None:
        self._kube = kube
        self._store = store
        self._registry = registry
        self._settings = settings
        self._namespace = namespace
        self._repair = RedisMirrorWriter.beside(store) if isinstance(store, RedisStore) else None
        # Schedules fire in the operator; the API keeps their specs and queues backfills.
        self.catalog = Catalog(
            KubeTemplates(kube, namespace, keep=settings.template_revision_history),
            KubeSchedules(kube, namespace),
            registry=registry,
            settings=settings,
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._kube.aclose()
        if self._store is not None:
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
        record = new_record(plan, submitted_by=submitted_by, run_id=run_id, origin=origin)
        created = await self._kube.create_run(self._namespace, new_object(record, self._namespace))
        return record_from_object(created)

    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord:
        if self._store is not None:
            try:
                record = await self._store.get(run_id, folded=folded)
                if record is not None and record.namespace == self._namespace:
                    return record
            except StoreUnavailableError:  # Redis away: no repair (it would wait again)
                return await self._get_from_cluster(run_id, folded=folded)
        return await self._get_from_cluster(run_id, repair=True, folded=folded)

    async def _get_from_cluster(
        self, run_id: str, *, repair: bool = False, folded: bool = False
    ) -> RunRecord:
        obj = await self._kube.get_run(self._namespace, run_id)
        if obj is None or is_deleted(obj):
            raise RunNotFoundError()
        record = record_from_object(obj, unfolded=not folded)
        if repair:
            await self._remember(obj, record)
        return record

    async def _remember(self, obj: WorkflowRun, record: RunRecord) -> None:
        """Put what the apiserver answered into Redis, never over anything newer (the
        mirror's conditional write): a read that follows reads no older state than this."""
        if self._repair is None:
            return
        version = obj.get("metadata", {}).get("resourceVersion")
        with contextlib.suppress(StoreUnavailableError):
            # only into a Redis an operator mirrors, and a run under way only for a while:
            # should that mirror be gone, nothing else would bring it up to date
            if await self._repair.mirrored(self._namespace):
                await self._repair.mirror(
                    record,
                    frozenset(record.status.tasks),
                    version=version,
                    unfinished_ttl=REPAIR_TTL_SECONDS,
                )

    async def task_phases(self, run_id: str) -> dict[str, str]:
        if self._store is not None:
            try:
                phases = await self._store.task_phases(run_id)
                if phases is not None:
                    return phases
            except StoreUnavailableError:
                return (await self._get_from_cluster(run_id)).status.task_phases()
        return (await self._get_from_cluster(run_id, repair=True)).status.task_phases()

    async def list(self, *, phase: RunPhase | None, limit: int, cursor: Cursor | None) -> RunPage:
        if self._store is not None:
            try:
                return await self._store.list(
                    phase=phase, limit=limit, cursor=cursor, namespace=self._namespace
                )
            except StoreUnavailableError:
                pass
        objects = await self._kube.list_runs(self._namespace)
        summaries = (
            record_from_object(obj, unfolded=False).summary()  # run-level fields only
            for obj in objects
            if not is_deleted(obj)
        )
        return paginate(summaries, phase=phase, limit=limit, cursor=cursor)

    async def retry(
        self,
        run_id: str,
        *,
        from_task: str | None,
        params: dict[str, Any] | None,
        requested_by: str | None,
    ) -> RunRecord:
        """Ask the operator for a retry (`spec.retryRequest`, with new params if any): the
        API never writes the operator's status. The patch names the resourceVersion the
        checks were made at, so of two retries sent at once the apiserver takes one and
        refuses the other (409)."""
        obj = await self._kube.get_run(self._namespace, run_id)
        if obj is None or is_deleted(obj):
            raise RunNotFoundError()
        record = record_from_object(obj)  # a retry already asked for shows as Pending
        plan = await retry_plan(
            record,
            from_task=from_task,
            params=params,
            registry=self._registry,
            settings=self._settings,
        )
        request: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "from": from_task,
            "params": params or None,
            "requestedBy": requested_by,
            "requestedAt": format_timestamp(utcnow()),
        }
        changes: dict[str, Any] = {"retryRequest": request, "cancelRequested": False}
        changes["forceCancel"] = None
        changes["approvals"] = None  # a gate the retry resets waits for a new answer
        if params:
            changes["params"] = plan.spec.params
        version = obj.get("metadata", {}).get("resourceVersion", "")
        try:
            patched = await self._kube.patch_run(
                self._namespace,
                run_id,
                {"metadata": {"resourceVersion": version}, "spec": changes},
            )
        except KubeConflictError:
            raise RunConflictError(
                "The run changed meanwhile (another retry?); read it and try again"
            ) from None
        if patched is None:
            raise RunNotFoundError()
        retried = record_from_object(patched)
        await self._remember(patched, retried)  # GET says Pending from now on, not the old end
        return retried

    async def decide(self, run_id: str, task_id: str, decision: Decision) -> RunRecord:
        """`spec.approvals.TASK`: the operator gives the answer to the run. The patch names
        the resourceVersion the task was seen Waiting at: of two answers sent at once,
        the apiserver takes one."""
        obj = await self._kube.get_run(self._namespace, run_id)
        if obj is None or is_deleted(obj):
            raise RunNotFoundError()
        record = record_from_object(obj)
        check_decision(record, task_id, decision)
        if task_id in (obj.get("spec", {}).get("approvals") or {}):
            raise NotWaitingError(f"Task {task_id} was decided already")
        version = obj.get("metadata", {}).get("resourceVersion", "")
        answer = decision.to_json_dict()
        try:
            patched = await self._kube.patch_run(
                self._namespace,
                run_id,
                {
                    "metadata": {"resourceVersion": version},
                    "spec": {"approvals": {task_id: answer}},
                },
            )
        except KubeConflictError:
            raise NotWaitingError(
                f"The run changed meanwhile (another answer for {task_id}?); read it and try again"
            ) from None
        if patched is None:
            raise RunNotFoundError()
        return record_from_object(patched)

    async def hold(self, run_id: str, *, suspended: bool) -> RunRecord:
        """`spec.suspend` (as Argo's): the operator holds or releases the run."""
        record = await self._get_from_cluster(run_id)
        if record.status.phase.finished:
            raise RunFinishedError(record.status.phase.value)
        patched = await self._kube.patch_run(
            self._namespace, run_id, {"spec": {"suspend": suspended}}
        )
        if patched is None:
            raise RunNotFoundError()
        return record_from_object(patched)

    async def cancel(self, run_id: str, *, force: bool = False) -> RunRecord:
        record = await self._get_from_cluster(run_id)
        if record.status.phase.finished:
            raise RunFinishedError(record.status.phase.value)
        spec: dict[str, Any] = {"cancelRequested": True}
        if force:
            spec["forceCancel"] = True
        patched = await self._kube.patch_run(self._namespace, run_id, {"spec": spec})
        if patched is None:
            raise RunNotFoundError()
        return record_from_object(patched)

    async def delete(self, run_id: str) -> None:
        await self._get_from_cluster(run_id)  # already being deleted is gone too: 404
        if not await self._kube.delete_run(self._namespace, run_id):
            raise RunNotFoundError()
        if self._store is not None:
            try:
                await self._store.delete(run_id)
            except StoreUnavailableError:
                logger.warning("Redis unavailable: the operator's mirror will drop %s", run_id)

    async def task_log(self, run_id: str, task_id: str) -> str:
        record = await self._get_from_cluster(run_id)
        task = record.status.tasks.get(task_id)
        if task is not None and task.job_name:
            text = await self._kube.job_log(
                self._namespace, task.job_name, limit_bytes=MAX_LOG_BYTES
            )
            if text is None:
                raise NoLogsError(f"No logs yet for task {task_id}: its pod has not started")
            return text
        if self._store is None:
            raise NoLogsError(f"No logs for task {task_id}: in-process logs are kept in Redis")
        try:
            return await stored_log(self._store, record, task_id)
        except StoreUnavailableError:
            raise NoLogsError(f"No logs for task {task_id} now: Redis is unavailable") from None

    async def task_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        """Jobs' logs from their pods, one by one; in-process tasks' from Redis, together.
        A big run is read folded: only the entries asked for are made."""
        record = await self._get_from_cluster(run_id, folded=True)
        tasks = entries_of(record.status, task_ids, run_id=run_id)
        found: dict[str, str] = {}
        stored = [task_id for task_id in task_ids if task_id in tasks]
        for task_id in [task_id for task_id in stored if tasks[task_id].job_name]:
            job = tasks[task_id].job_name
            assert job is not None
            text = await self._kube.job_log(self._namespace, job, limit_bytes=MAX_LOG_BYTES)
            if text is not None:
                found[task_id] = text
        if self._store is not None:
            with contextlib.suppress(StoreUnavailableError):  # logs are a courtesy
                rest = [task_id for task_id in stored if not tasks[task_id].job_name]
                found |= await self._store.get_logs(run_id, rest)
        return found

    async def events(self, run_id: str) -> AsyncIterator[RunRecord | RunEvent]:
        if self._store is not None:
            try:
                async for item in stream_run(
                    self._store, run_id, lambda: self.get(run_id, folded=True)
                ):
                    yield item
                return
            except StoreUnavailableError:
                logger.info("Redis unavailable: streaming %s by polling the WorkflowRun", run_id)
        async for item in self._poll(run_id):
            yield item

    async def _poll(self, run_id: str) -> AsyncIterator[RunRecord | RunEvent]:
        """Without Redis: the run, then an update whenever the WorkflowRun's status changes."""
        record = await self._get_from_cluster(run_id)
        yield record
        seen = {tid: task.to_json_dict() for tid, task in record.status.tasks.items()}
        while not record.status.phase.finished:
            await asyncio.sleep(POLL_SECONDS)
            try:
                record = await self._get_from_cluster(run_id)
            except RunNotFoundError:
                return
            now = {tid: task.to_json_dict() for tid, task in record.status.tasks.items()}
            changed = frozenset(tid for tid, entry in now.items() if seen.get(tid) != entry)
            if changed or record.status.phase.finished:
                yield RunEvent.of(run_id, record.status, changed)
            seen = now

    async def readiness(self) -> dict[str, str]:
        checks = {"apiserver": await self._kube.ping()}
        if self._store is not None:
            try:
                await self._store.ping()
                checks["redis"] = "ok"
            except StoreUnavailableError as error:
                checks["redis"] = f"unavailable ({error}); reading WorkflowRuns directly"
        return checks
