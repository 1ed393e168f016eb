"""Approval tasks: what a person's answer must look like, and what it makes of the task.

A task with `approval` runs nothing: the runner shows it `Waiting` until a decision comes
(`WorkflowRunner.decide`, which the API's approve and reject routes reach through the
backend) or its `timeoutSeconds` pass (`onTimeout` decides). The approver's `outputs` must
fit the task's `inputs`, a JSON Schema checked once when the run is submitted and again
against each answer, before anything is recorded.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from stageflow.models.request import ApprovalSpec
from stageflow.models.status import Decision, utcnow


class NotWaitingError(ValueError):
    """The task is not waiting for a decision (the API answers 409)."""


class ApprovalInputError(ValueError):
    """The approver's outputs do not fit the task's `inputs` (the API answers 400)."""


def schema_error(inputs: dict[str, Any]) -> str | None:
    """Why `inputs` is not a JSON Schema, or None if it is one."""
    try:
        jsonschema.Draft202012Validator.check_schema(inputs)
    except jsonschema.SchemaError as error:
        return str(error.message)
    return None


def check_outputs(task_id: str, spec: ApprovalSpec, outputs: dict[str, Any] | None) -> None:
    """Raise ApprovalInputError naming the first place `outputs` do not fit `inputs`."""
    if spec.inputs is None:
        if outputs:
            raise ApprovalInputError(
                f"Task {task_id} takes no outputs (its approval has no inputs)"
            )
        return
    validator = jsonschema.Draft202012Validator(spec.inputs)
    try:
        error = next(iter(sorted(validator.iter_errors(outputs or {}), key=str)), None)
    except Exception as failure:  # e.g. a `$ref` nothing resolves: the schema's fault
        raise ApprovalInputError(
            f"Task {task_id}: its approval inputs cannot be applied: {failure}"
        ) from None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "outputs"
        raise ApprovalInputError(
            f"Outputs for task {task_id} do not fit its inputs: {where}: {error.message}"
        )


def timed_out(spec: ApprovalSpec) -> Decision:
    """What a wait that ran out counts as."""
    return Decision(
        approved=spec.on_timeout == "approve",
        at=utcnow(),
        comment=f"no decision within {spec.timeout_seconds or 0:g}s (onTimeout: {spec.on_timeout})",
        timed_out=True,
    )


def message_of(decision: Decision) -> str:
    """The task's message once decided: who, and what they said."""
    verb = "approved" if decision.approved else "rejected"
    if decision.timed_out:
        return f"{verb}: {decision.comment}"
    who = f" by {decision.by}" if decision.by else ""
    said = f": {decision.comment}" if decision.comment else ""
    return f"{verb}{who}{said}"
