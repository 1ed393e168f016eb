"""A template's params: what a run by reference must give, and what it may (docs/templates.md).

Pure: the API resolves a `templateRef` with these on either backend, and the scheduler
the same way for every slot it fires.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stageflow.engine.plan import SpecError
from stageflow.models.records import RunOrigin
from stageflow.models.request import WorkflowRequest
from stageflow.models.schedule import ScheduleRecord
from stageflow.models.status import format_timestamp, utcnow
from stageflow.models.template import (
    SCHEDULE_LABEL,
    SCHEDULED_TIME_PARAM,
    TemplateRecord,
    TemplateSubmission,
    WorkflowTemplateSpec,
)


def resolve_params(
    name: str,
    spec: WorkflowTemplateSpec,
    given: Mapping[str, Any],
    *,
    also: Iterable[str] = (),
) -> dict[str, Any]:
    """The run's param values: those given, then the declared defaults. A param the
    template does not declare (other than those in `also`, which a schedule sets) or a
    required one left out is a SpecError naming it."""
    declared = spec.params
    allowed = set(declared) | set(also)
    unknown = sorted(key for key in given if key not in allowed)
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise SpecError(f"Unknown param for template {name}: {unknown[0]} (it declares: {names})")
    missing = sorted(key for key, param in declared.items() if param.required and key not in given)
    if missing:
        raise SpecError(f"Missing param for template {name}: {missing[0]} (it has no default)")
    values = {key: param.default for key, param in declared.items() if not param.required}
    values.update(given)
    return values


def sample_body(spec: WorkflowTemplateSpec) -> WorkflowRequest:
    """The body a template is validated as when it is saved: the defaults, and a sample
    string for each required param and for `scheduledTime` (references are checked by name;
    a run key such as `"deploy-" + params.env` is evaluated, so it needs a string)."""
    values: dict[str, Any] = {SCHEDULED_TIME_PARAM: "2000-01-01T00:00:00Z"}
    values.update(
        {
            key: f"sample-{key}" if param.required else param.default
            for key, param in spec.params.items()
        }
    )
    return spec.body(values)


def submission_body(
    template: TemplateRecord, submission: TemplateSubmission
) -> tuple[WorkflowRequest, RunOrigin]:
    """What a run by reference runs: the revision's body with the params resolved, its
    labels and the run's own, and the name given (else the template's)."""
    given = dict(submission.params)
    if SCHEDULED_TIME_PARAM not in template.spec.params and _reads_scheduled_time(template):
        # run by hand: `scheduledTime` is when it was submitted (Argo's for a manual run)
        given.setdefault(SCHEDULED_TIME_PARAM, format_timestamp(utcnow()))
    params = resolve_params(template.name, template.spec, given, also=[SCHEDULED_TIME_PARAM])
    body = _with(
        template.spec.body(params),
        name=submission.name or template.name,
        labels=submission.labels,
    )
    return body, _template_origin(template)


def _reads_scheduled_time(template: TemplateRecord) -> bool:
    text = json.dumps(template.spec.normalised_json())
    return f"params.{SCHEDULED_TIME_PARAM}" in text


def _with(body: WorkflowRequest, *, name: str, labels: Mapping[str, str]) -> WorkflowRequest:
    """`body` named `name` (unless it has a name) with `labels` added, validated again (the
    labels' bound holds for the sum)."""
    fields = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    fields["name"] = body.name or name
    fields["labels"] = {**body.labels, **labels}
    try:
        return WorkflowRequest.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpecError(f"{where}: {first['msg']}") from None


def slot_body(
    schedule: ScheduleRecord,
    template: TemplateRecord | None,
    scheduled_time: datetime,
    *,
    backfill: bool,
) -> tuple[WorkflowRequest, RunOrigin]:
    """What a schedule's slot runs: its template (the revision given to this function) or
    its inline body, with the schedule's params and `scheduledTime` (RFC 3339, UTC)."""
    spec = schedule.spec
    values = {**spec.params, SCHEDULED_TIME_PARAM: format_timestamp(scheduled_time)}
    if template is not None:
        params = resolve_params(template.name, template.spec, values, also=[SCHEDULED_TIME_PARAM])
        body = template.spec.body(params)
        origin = _template_origin(template)
    else:
        assert spec.workflow_spec is not None, "a schedule runs a template or a body"
        body = spec.workflow_spec.model_copy(
            update={"params": {**spec.workflow_spec.params, **values}}
        )
        origin = RunOrigin()
    # the label names the schedule on either backend (`-l stageflow.dev/schedule=NAME`)
    body = _with(body, name=schedule.name, labels={**spec.labels, SCHEDULE_LABEL: schedule.name})
    origin = origin.model_copy(
        update={
            "schedule": schedule.name,
            "scheduled_time": scheduled_time,
            "backfill": backfill or None,
        }
    )
    return body, origin


def _template_origin(template: TemplateRecord) -> RunOrigin:
    return RunOrigin(
        template=template.name,
        template_revision=template.revision,
        template_digest=template.digest,
    )


# How a host reads a template revision (None: the current one): its repository's `get`.
TemplateLookup = Callable[[str, int | None], Awaitable[TemplateRecord | None]]


def template_named(name: str, revision: int | None = None) -> str:
    """`Template nightly` or `Template nightly revision 3`, as messages name one."""
    return f"Template {name}" + (f" revision {revision}" if revision is not None else "")


async def slot_request(
    schedule: ScheduleRecord,
    scheduled_time: datetime,
    lookup: TemplateLookup,
    *,
    backfill: bool = False,
) -> tuple[WorkflowRequest, RunOrigin]:
    """What a slot runs, its template read through `lookup`: the one resolution the API
    (validating a schedule), the local scheduler and the operator's share. A template
    that is gone is a SpecError (the slot is given up, not retried)."""
    template = None
    ref = schedule.spec.template_ref
    if ref is not None:
        template = await lookup(ref.name, ref.revision)
        if template is None:
            raise SpecError(f"Unknown template: {template_named(ref.name, ref.revision)}")
    return slot_body(schedule, template, scheduled_time, backfill=backfill)
