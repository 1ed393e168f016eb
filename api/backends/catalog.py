"""Templates and schedules, served the same way by both backends over their repositories
(store/catalog.py's protocols: Redis or memory on the local backend, WorkflowTemplate and
Schedule resources on kubernetes). Everything is validated as a submission is before
anything is stored, so a bad template or schedule is a 400 and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

from stageflow.api.backends.common import compile_off_loop
from stageflow.api.errors import ApiError, InvalidRequestError
from stageflow.engine import Plan, SpecError, TaskRegistry, WorkflowRequest
from stageflow.engine.config import EngineSettings
from stageflow.engine.schedules import backfill_slots, check_spec, queue_backfill
from stageflow.engine.workflow_templates import (
    sample_body,
    slot_request,
    submission_body,
    template_named,
)
from stageflow.models.records import RunOrigin
from stageflow.models.schedule import (
    BackfillRequest,
    BackfillResult,
    ScheduleRecord,
    ScheduleSpec,
)
from stageflow.models.status import utcnow
from stageflow.models.template import TemplateRecord, TemplateSubmission, WorkflowTemplateSpec
from stageflow.store.catalog import ScheduleRepo, TemplateRepo

_BACKFILL_ATTEMPTS = 10


class TemplateNotFoundError(ApiError):
    status_code = 404

    def __init__(self, name: str, revision: int | None = None) -> None:
        super().__init__(f"{template_named(name, revision)} not found")


class ScheduleNotFoundError(ApiError):
    status_code = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"Schedule {name} not found")


class ScheduleBusyError(ApiError):
    status_code = 409


class Catalog:
    def __init__(
        self,
        templates: TemplateRepo,
        schedules: ScheduleRepo,
        *,
        registry: TaskRegistry,
        settings: EngineSettings,
        nudge: Callable[[], None] | None = None,
        validate: Callable[[Plan], None] | None = None,
    ) -> None:
        """`validate`: what the backend refuses beyond the engine (local: Job tasks)."""
        self.templates, self.schedules = templates, schedules
        self._registry, self._settings = registry, settings
        self._nudge = nudge or (lambda: None)
        self._validate = validate or (lambda _: None)

    # -- templates ------------------------------------------------------------------------

    async def put_template(
        self, name: str, spec: WorkflowTemplateSpec
    ) -> tuple[TemplateRecord, bool]:
        await self._compile(sample_body(spec), f"Template {name}")
        return await self.templates.put(name, spec)

    async def template(self, name: str, revision: int | None = None) -> TemplateRecord:
        found = await self.templates.get(name, revision)
        if found is None:
            raise TemplateNotFoundError(name, revision)
        return found

    async def delete_template(self, name: str) -> None:
        if not await self.templates.delete(name):
            raise TemplateNotFoundError(name)

    async def resolve(self, submission: TemplateSubmission) -> tuple[WorkflowRequest, RunOrigin]:
        """A run by reference: an unknown template or revision, or params that do not fit
        its declarations, is a 400 naming it (a submission, not a read: not a 404)."""
        ref = submission.template_ref
        template = await self.templates.get(ref.name, ref.revision)
        if template is None:
            raise InvalidRequestError(f"Unknown template: {template_named(ref.name, ref.revision)}")
        return submission_body(template, submission)

    # -- schedules ------------------------------------------------------------------------

    async def put_schedule(self, name: str, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        check_spec(spec)
        probe = ScheduleRecord(name=name, uid="probe", created_at=utcnow(), spec=spec)
        body, _ = await slot_request(probe, utcnow(), self.templates.get)  # SpecError: a 400
        await self._compile(body, f"Schedule {name}")
        stored = await self.schedules.put(name, spec)
        self._nudge()
        return stored

    async def schedule(self, name: str) -> ScheduleRecord:
        found = await self.schedules.get(name)
        if found is None:
            raise ScheduleNotFoundError(name)
        return found

    async def delete_schedule(self, name: str) -> None:
        if not await self.schedules.delete(name):
            raise ScheduleNotFoundError(name)

    async def hold_schedule(self, name: str, *, suspend: bool) -> ScheduleRecord:
        found = await self.schedules.set_suspend(name, suspend)
        if found is None:
            raise ScheduleNotFoundError(name)
        self._nudge()
        return found

    async def backfill(self, name: str, request: BackfillRequest) -> BackfillResult:
        """The slots of [start, end) queued as waiting slots of the schedule's status (the
        scheduler fires them under the request's overlap policy); at most 1,000."""
        record = await self.schedule(name)
        slots = backfill_slots(record.spec, request.start, request.end)  # naive, reversed: 400
        if request.end > utcnow():
            raise InvalidRequestError(
                "A backfill covers past slots only: end is in the future (the clock fires those)"
            )
        if request.dry_run:
            return BackfillResult(slots=slots, queued=0, dry_run=True)
        for _ in range(_BACKFILL_ATTEMPTS):
            status = queue_backfill(record.status, record.uid, slots, request.overlap_policy)
            if await self.schedules.write_status(record, status):
                self._nudge()
                return BackfillResult(
                    slots=slots,
                    queued=len(status.pending) - len(record.status.pending),
                    dry_run=False,
                )
            record = await self.schedule(name)  # the scheduler wrote meanwhile: again
        raise ScheduleBusyError(f"Schedule {name} kept changing; try the backfill again")

    async def _compile(self, body: WorkflowRequest, what: str) -> None:
        try:
            plan = await compile_off_loop(body, registry=self._registry, settings=self._settings)
        except SpecError as error:
            raise SpecError(f"{what}: {error}") from None
        try:
            self._validate(plan)
        except ApiError as error:
            raise InvalidRequestError(f"{what}: {error.detail}") from None
