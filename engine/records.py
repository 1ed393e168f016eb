"""A new run's record, made from its validated plan (the record type itself is a wire model,
stageflow.models.records, which knows nothing of plans)."""

from __future__ import annotations

import uuid

from stageflow.engine.plan import Plan
from stageflow.engine.runner import initial_status
from stageflow.models.records import RunOrigin, RunRecord
from stageflow.models.status import utcnow


def new_record(
    plan: Plan,
    *,
    submitted_by: str | None = None,
    run_id: str | None = None,
    origin: RunOrigin | None = None,
) -> RunRecord:
    """The record of a run about to start, every task Pending: a fresh UUID4, or the id a
    schedule slot derives (engine/schedules.py), so a second firing finds the first run."""
    options = plan.options
    return RunRecord(
        run_id=run_id or str(uuid.uuid4()),
        origin=origin,
        name=options.name,
        labels=options.labels,
        created_at=utcnow(),
        spec=plan.spec,
        status=initial_status(plan),
        submitted_by=submitted_by,
    )
