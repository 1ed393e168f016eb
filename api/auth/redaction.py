"""Plain `env` values of Job tasks, hidden from callers who may only read a run.

An env value may be a credential a submitter put there; a viewer must not read it
through the API. `valueFrom.secretKeyRef` entries only name a Secret and
are shown as they are; that is also the way to keep a value out of the run for good
(the WorkflowRun itself holds plain values, readable with kubectl by whoever may
`get` it).
"""

from __future__ import annotations

from stageflow.engine import Stage, TaskSpec, WorkflowRequest
from stageflow.models.records import RunRecord

REDACTED = "<redacted>"


def _task(entry: str | TaskSpec) -> str | TaskSpec:
    if isinstance(entry, str) or not entry.env:
        return entry
    env = {name: REDACTED if isinstance(value, str) else value for name, value in entry.env.items()}
    return entry.model_copy(update={"env": env})


def _spec(spec: WorkflowRequest) -> WorkflowRequest:
    update: dict[str, object] = {}
    if spec.workflow is not None:
        update["workflow"] = [
            Stage(type=stage.type, tasks=[_task(entry) for entry in stage.tasks])
            for stage in spec.workflow
        ]
    if spec.dag is not None:
        update["dag"] = [_task(entry) for entry in spec.dag]
    if spec.finally_ is not None:
        update["finally_"] = [_task(entry) for entry in spec.finally_]
    return spec.model_copy(update=update)


def redact_env(record: RunRecord) -> RunRecord:
    """The record with every plain env value of its tasks replaced by `<redacted>`."""
    return record.model_copy(update={"spec": _spec(record.spec)})
