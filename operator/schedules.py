"""The operator's scheduler host: the leading operator fires every Schedule it watches.

kopf runs only on the leader (operator/main.py), and the scheduler starts with it
(handlers.py), so one operator fires slots at a time; a standby that takes over reads
each schedule's status and goes on from `lastScheduledTime`. A slot fires at most once
even across a failover in the middle of firing: its run's name derives from (schedule,
slot), so a second create finds the first run (409) instead of making another, and the
status is written, conditional on the version read, only after the run exists.

Each round also keeps the revisions of templates changed with kubectl (the API keeps those
it writes itself): see kube/catalog.py.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from stageflow.engine import compile_workflow
from stageflow.engine.plan import SpecError
from stageflow.engine.records import new_record
from stageflow.engine.schedules import Firing
from stageflow.engine.workflow_templates import slot_request
from stageflow.kube import KubeConflictError, KubeError, KubeUnavailableError
from stageflow.kube.catalog import InvalidTemplateError, ScheduleStates, TemplateRevisions
from stageflow.kube.resource import SCHEDULE_LABEL, new_object, record_from_object
from stageflow.models.schedule import ScheduleRecord, ScheduleStatus
from stageflow.models.status import RunPhase
from stageflow.models.template import TemplateRecord

if TYPE_CHECKING:
    from stageflow.operator.context import OperatorContext

logger = logging.getLogger(__name__)


class KubeScheduleHost:
    def __init__(self, ctx: OperatorContext) -> None:
        self._ctx = ctx
        self._kube = ctx.kube
        self._schedules = ScheduleStates(ctx.kube, ctx.settings.namespace)
        self._missing_told = False

    def _templates(self, namespace: str) -> TemplateRevisions:
        return TemplateRevisions(
            self._kube, namespace, keep=self._ctx.settings.template_revision_history
        )

    async def schedules(self) -> list[ScheduleRecord]:
        try:
            await self._keep_template_revisions()
            listed = await self._schedules.list()
        except KubeError as error:
            if error.status != 404:
                raise
            if not self._missing_told:  # once: it stays so until someone installs them
                logger.warning(
                    "the WorkflowTemplate and Schedule CRDs are not installed (kubectl apply "
                    "-f crds/, or the chart's crds/): no schedule fires"
                )
                self._missing_told = True
            return []
        self._missing_told = False
        return listed

    async def _keep_template_revisions(self) -> None:
        """Templates whose spec changed since a revision was kept (kubectl apply): keep it;
        one that does not validate gets the reason in its status."""
        for obj in await self._kube.list_templates(self._ctx.settings.namespace):
            metadata, status = obj["metadata"], obj.get("status") or {}
            if status.get("revision") == metadata.get("generation"):
                continue
            namespace = metadata["namespace"]
            try:
                await self._templates(namespace).snapshot(obj)
            except InvalidTemplateError as error:
                if status.get("message") != str(error):
                    await self._kube.patch_template_status(
                        namespace, metadata["name"], {"status": {"message": str(error)}}
                    )
            except KubeError as error:  # this template's trouble stops no schedule
                if isinstance(error, KubeUnavailableError):
                    raise
                logger.warning(
                    "template %s/%s: revision not kept: %s", namespace, metadata["name"], error
                )

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        return await self._schedules.write_status(record, status)

    async def pause(self, record: ScheduleRecord, reason: str) -> None:
        await self._schedules.suspend(record, reason)

    async def start_run(self, record: ScheduleRecord, firing: Firing) -> None:
        namespace = record.namespace or "default"
        templates = self._templates(namespace)

        async def lookup(name: str, revision: int | None) -> TemplateRecord | None:
            try:
                return await templates.get(name, revision)
            except InvalidTemplateError as error:  # written with kubectl, not valid
                raise SpecError(str(error)) from None

        body, origin = await slot_request(
            record, firing.scheduled_time, lookup, backfill=firing.backfill
        )
        plan = compile_workflow(body, registry=self._ctx.tasks, **self._ctx.settings.limits())
        run = new_record(
            plan, submitted_by=f"schedule:{record.name}", run_id=firing.run_id, origin=origin
        )
        with contextlib.suppress(KubeConflictError):  # fired before: the same run
            await self._kube.create_run(namespace, new_object(run, namespace))

    async def run_phases(
        self, record: ScheduleRecord, run_ids: list[str]
    ) -> dict[str, RunPhase | None]:
        """One list of the schedule's runs (by its label) a round, not a read per run."""
        namespace = record.namespace or "default"
        listed = await self._kube.list_labelled_runs(namespace, f"{SCHEDULE_LABEL}={record.name}")
        found = {obj["metadata"]["name"]: obj for obj in listed}
        phases: dict[str, RunPhase | None] = {}
        for run_id in run_ids:
            obj = found.get(run_id)
            phases[run_id] = (
                None if obj is None else record_from_object(obj, unfolded=False).status.phase
            )
        return phases

    async def cancel_run(self, record: ScheduleRecord, run_id: str) -> None:
        await self._kube.patch_run(
            record.namespace or "default", run_id, {"spec": {"cancelRequested": True}}
        )

    async def delete_run(self, record: ScheduleRecord, run_id: str) -> None:
        try:
            await self._kube.delete_run(record.namespace or "default", run_id)
        except KubeError as error:
            logger.warning("could not delete run %s of schedule %s: %s", run_id, record.name, error)
