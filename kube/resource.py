"""The WorkflowRun resource's shape, both ways: RunRecord <-> object and patches
(docs/kubernetes.md).

The API builds objects from records; the operator and the API's readers turn
objects back into records; the operator's status sink builds merge patches.
All of them use this one module, so the CRD's shape is written down once in
Python (and once in crds/workflowrun.yaml, which a test compares with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stageflow.engine import RunPhase, RunStatus, TaskSpec, TaskStatus, WorkflowRequest
from stageflow.kube.bodies import Condition, RetryRequestBody, WorkflowRun, WorkflowRunStatus
from stageflow.models.folding import fold, is_big, unfold
from stageflow.models.records import RunOrigin, RunRecord
from stageflow.models.status import format_timestamp, parse_timestamp, utcnow

GROUP = "stageflow.dev"
VERSION = "v1alpha1"
PLURAL = "workflowruns"
KIND = "WorkflowRun"
API_VERSION = f"{GROUP}/{VERSION}"
LABEL_PREFIX = f"{GROUP}/"
CREATED_AT_ANNOTATION = f"{LABEL_PREFIX}created-at"  # creationTimestamp has 1 s precision
SUBMITTED_BY_ANNOTATION = f"{LABEL_PREFIX}submitted-by"  # the authenticated caller
RUN_LABEL = f"{LABEL_PREFIX}run"
TASK_LABEL = f"{LABEL_PREFIX}task"
SUCCEEDED_CONDITION = "Succeeded"
# Where a run came from (RunOrigin): labels to select by, annotations for the rest.
TEMPLATE_LABEL = f"{LABEL_PREFIX}template"
TEMPLATE_REVISION_LABEL = f"{LABEL_PREFIX}template-revision"
SCHEDULE_LABEL = f"{LABEL_PREFIX}schedule"
ORIGIN_ANNOTATION = f"{LABEL_PREFIX}origin"  # the whole RunOrigin, as JSON


def new_object(record: RunRecord, namespace: str) -> WorkflowRun:
    """The WorkflowRun to create for a freshly submitted run (status is the operator's)."""
    spec = record.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec["cancelRequested"] = record.cancel_requested
    annotations = {CREATED_AT_ANNOTATION: format_timestamp(record.created_at)}
    if record.submitted_by is not None:
        annotations[SUBMITTED_BY_ANNOTATION] = record.submitted_by
    labels = {"app.kubernetes.io/managed-by": "stageflow"}
    if record.origin is not None:
        annotations[ORIGIN_ANNOTATION] = record.origin.model_dump_json(exclude_none=True)
        labels.update(origin_labels(record.origin))
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": record.run_id,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def origin_labels(origin: RunOrigin) -> dict[str, str]:
    """`kubectl get wfr -l stageflow.dev/schedule=nightly` finds a schedule's runs."""
    labels = {}
    if origin.template is not None:
        labels[TEMPLATE_LABEL] = origin.template
        labels[TEMPLATE_REVISION_LABEL] = str(origin.template_revision)
    if origin.schedule is not None:
        labels[SCHEDULE_LABEL] = origin.schedule
    return labels


def pending_retry(obj: Mapping[str, Any]) -> RetryRequestBody | None:
    """The retry the API asked for (`spec.retryRequest`) if the operator has not carried it
    out yet: its id is not among the status's `retries`."""
    request: RetryRequestBody | None = obj.get("spec", {}).get("retryRequest")
    if not request or not request.get("id"):
        return None
    applied = {entry.get("id") for entry in (obj.get("status") or {}).get("retries") or []}
    return None if request["id"] in applied else request


def record_from_object(
    obj: Mapping[str, Any], *, as_stored: bool = False, unfolded: bool = True
) -> RunRecord:
    """A WorkflowRun as the API and the mirror show it (from the client or kopf's watch).

    A run with a retry requested and not yet carried out shows as Pending, with a message
    saying so (so a client that waits for it does not see the old end); `as_stored` gives
    the status as written, for the operator that carries the retry out. A big run's
    folded entries are unfolded, unless `unfolded` is False (the mirror, which writes
    them folded again, reads a run of 100,000 entries without making 100,000)."""
    metadata = obj.get("metadata", {})
    spec = dict(obj.get("spec", {}))
    cancel_requested = bool(spec.pop("cancelRequested", False))
    spec.pop("forceCancel", None)
    spec.pop("retryRequest", None)
    spec.pop("suspend", None)
    spec.pop("approvals", None)
    raw_status = obj.get("status") or {}
    status = RunStatus.model_validate(raw_status)  # conditions etc. are the CR's own: ignored
    if unfolded:
        status = unfold(status, run_id=metadata.get("name"))
    retry = None if as_stored else pending_retry(obj)
    if retry is not None:
        by = f" by {retry['requestedBy']}" if retry.get("requestedBy") else ""
        status.phase, status.finished_at = RunPhase.PENDING, None
        status.message = f"Retry requested{by}; waiting for the operator"
    request = WorkflowRequest.model_validate(spec)
    if not status.tasks and not status.folded:  # no status yet: every task is Pending
        status.tasks = {task_id: TaskStatus() for task_id in _task_ids(request)}
        status.refresh_progress()
    annotations = metadata.get("annotations") or {}
    return RunRecord(
        run_id=metadata["name"],
        namespace=metadata.get("namespace"),
        name=request.name,
        labels=request.labels,
        created_at=parse_timestamp(
            annotations.get(CREATED_AT_ANNOTATION) or metadata.get("creationTimestamp")
        )
        or utcnow(),
        spec=request,
        status=status,
        cancel_requested=cancel_requested,
        submitted_by=annotations.get(SUBMITTED_BY_ANNOTATION),
        origin=_origin(annotations.get(ORIGIN_ANNOTATION)),
    )


def _origin(text: str | None) -> RunOrigin | None:
    """The run's origin annotation; one that does not parse (written by hand) is none."""
    if not text:
        return None
    try:
        return RunOrigin.model_validate_json(text)
    except ValueError:
        return None


def is_deleted(obj: Mapping[str, Any]) -> bool:
    """Deletion requested: for users the run is gone, though finalizers may hold it a moment."""
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def _task_ids(request: WorkflowRequest) -> list[str]:
    """Task ids of a normalised spec (every entry an object with its name)."""
    entries = (
        [entry for stage in request.workflow for entry in stage.tasks]
        if request.workflow is not None
        else list(request.dag or [])
    ) + list(request.finally_ or [])
    return [entry.name or "" if isinstance(entry, TaskSpec) else entry for entry in entries]


def task_entry(task: TaskStatus) -> dict[str, Any]:
    """A task's status for a merge patch: unset fields are null, so stale values are removed."""
    return task.model_dump(mode="json", by_alias=True)


def succeeded_condition(phase: RunPhase, message: str | None, since: datetime) -> Condition:
    """Kubernetes-style condition, Tekton's convention: Unknown while running, then True/False."""
    state = (
        "Unknown" if not phase.finished else ("True" if phase is RunPhase.SUCCEEDED else "False")
    )
    condition: Condition = {
        "type": SUCCEEDED_CONDITION,
        "status": state,
        "reason": phase.value,
        "lastTransitionTime": format_timestamp(since).split(".")[0] + "Z",
    }
    if message:
        condition["message"] = message
    return condition


@dataclass(frozen=True)
class StoredTasks:
    """How a WorkflowRun holds its task map: which entries are whole in `status.tasks`, and
    whether `status.folded` holds the rest (stageflow/models/folding.py). What a status
    patch must change follows from it: the writer keeps the one its last write made."""

    inline: frozenset[str] = frozenset()
    folded: bool = False

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> StoredTasks:
        """What a WorkflowRun as read holds."""
        status = obj.get("status") or {}
        return cls(frozenset(status.get("tasks") or ()), bool(status.get("folded")))


NOTHING_STORED = StoredTasks()  # a WorkflowRun with no status yet


def status_patch(
    status: RunStatus,
    changed: frozenset[str],
    *,
    observed_generation: int | None,
    condition_since: datetime,
    stored: StoredTasks = NOTHING_STORED,
    certain: bool = True,
    run_id: str | None = None,
) -> tuple[WorkflowRun, StoredTasks]:
    """A merge patch for the status subresource, and what the run holds once it is applied:
    run fields and only the changed tasks. A big run's alike entries go to `folded` (the
    whole list, replaced), and an entry folded since the last write is removed from
    `tasks`; a run small again (a retry dropped its instances) is written whole, and so is
    a small run when what the object holds is not `certain` (`stored` came from a read
    that may be old, or the last patch failed and may have been applied): its groups, if
    it has any, are removed only with every entry written whole beside. The `run_id`
    (the WorkflowRun's name) folds the Job names derived from it."""
    if is_big(status):
        inline, groups = fold(status.tasks, run_id=run_id)
        tasks: dict[str, Any] = {
            task_id: task_entry(task)
            for task_id, task in inline.items()
            if task_id in changed or task_id not in stored.inline
        }
        tasks.update((task_id, None) for task_id in stored.inline if task_id not in inline)
        after = StoredTasks(frozenset(inline), folded=True)
        folded_body: list[dict[str, Any]] | None = [group.to_json_dict() for group in groups]
    else:
        # a task id no longer in the status (a forEach instance a retry dropped) is removed
        whole = stored.folded or not certain
        rewrite = changed | (frozenset(status.tasks) if whole else frozenset())
        tasks = {
            task_id: task_entry(status.tasks[task_id]) if task_id in status.tasks else None
            for task_id in sorted(rewrite)
        }
        after, folded_body = StoredTasks(frozenset(status.tasks)), None
    body: WorkflowRunStatus = {
        "phase": status.phase.value,
        "progress": status.progress,
        "startedAt": format_timestamp(status.started_at) if status.started_at else None,
        "finishedAt": format_timestamp(status.finished_at) if status.finished_at else None,
        "message": status.message,
        "toleratedFailures": status.tolerated_failures,
        "mainPhase": status.main_phase.value if status.main_phase is not None else None,
        "suspended": status.suspended,
        "queue": status.queue.to_json_dict() if status.queue is not None else None,
        "retries": [entry.to_json_dict() for entry in status.retries] if status.retries else None,
        "conditions": [succeeded_condition(status.phase, status.message, condition_since)],
        "tasks": tasks,
    }
    if folded_body is not None or stored.folded or not certain:  # groups set, or removed
        body["folded"] = folded_body
    if observed_generation is not None:
        body["observedGeneration"] = observed_generation
    return {"status": body}, after
