"""A task attempt as a batch/v1 Job: its name, its manifest, its outcome (docs/jobs.md).

Pure functions: the operator's Job executor decides when; this module decides what.
- One Job per attempt, named from run, task and attempt, always a valid DNS label
  (at most 63 characters, lower case), whatever the task's id is, and the same every
  time for the same attempt: an operator that restarts finds the Job it made.
- Owned by the WorkflowRun (deleted with it), `backoffLimit: 0` (the engine retries),
  `activeDeadlineSeconds` from the task's timeout, `ttlSecondsAfterFinished`.
- Pods meet the restricted Pod Security Standard: non-root, no privilege escalation,
  every capability dropped, the runtime's default seccomp profile.
- Task pods mount no service account token unless the task names a service account
  (which the operator's allowlist must permit, engine/policy.py): a task's container
  gets no Kubernetes identity by default.
- An `env` value may be a `secretKeyRef`: the pod reads the Secret, so the value is
  never in the WorkflowRun, Redis or an API answer.
- Outputs come back in the container's termination message: `stageflow task run`
  writes them to /dev/termination-log (Kubernetes keeps 4 KiB of it in the pod's
  status), and the operator reads them from there (`outputs_of`).
- Why a task failed comes back the same way (`failure_of`): `stageflow task run`
  writes its error there, and a container of the user's own that exits non-zero
  without writing one gets the tail of its log instead (`FallbackToLogsOnError`),
  so a failed Job task says more than "Job failed".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stageflow.engine import TaskResult, TaskSpec
from stageflow.kube.bodies import Job, JobSpec
from stageflow.kube.resource import API_VERSION, KIND, LABEL_PREFIX, RUN_LABEL, TASK_LABEL
from stageflow.models.naming import job_name as job_name  # the operator names Jobs by it
from stageflow.models.request import EnvFrom

ATTEMPT_LABEL = f"{LABEL_PREFIX}attempt"
TERMINATION_LOG = "/dev/termination-log"
OUTPUTS_ENV = "STAGEFLOW_OUTPUTS_FILE"
TASK_ID_ANNOTATION = f"{LABEL_PREFIX}task-id"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class JobSettings:
    """How task pods run; from the operator's STAGEFLOW_TASK_* settings."""

    image: str
    pull_policy: str = "IfNotPresent"
    service_account: str | None = None
    ttl_seconds_after_finished: int = 3600
    run_as_user: int = 10001


@dataclass(frozen=True)
class Owner:
    """The WorkflowRun a Job belongs to."""

    namespace: str
    name: str
    uid: str


def label_value(text: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_VALUE.sub("-", text)[:63].strip("-_.") or "task"


def task_command(spec: TaskSpec) -> tuple[list[str] | None, list[str] | None]:
    """(command, args) of the container: the task's own, or `stageflow task run`."""
    if spec.image is not None:
        return spec.command, spec.args
    params = json.dumps(spec.params, separators=(",", ":"), sort_keys=True)
    return ["stageflow", "task", "run", spec.task or "", "--params", params], None


def env_var(name: str, value: str | EnvFrom) -> dict[str, Any]:
    """One container env entry: a plain value, or Kubernetes' own valueFrom.secretKeyRef."""
    if isinstance(value, str):
        return {"name": name, "value": value}
    return {
        "name": name,
        "valueFrom": value.model_dump(by_alias=True, exclude_none=True)["valueFrom"],
    }


def manifest(
    *, owner: Owner, task_id: str, spec: TaskSpec, attempt: int, settings: JobSettings
) -> Job:
    name = job_name(owner.name, task_id, attempt)
    labels = {
        RUN_LABEL: owner.name,
        TASK_LABEL: label_value(task_id),
        ATTEMPT_LABEL: str(attempt),
        "app.kubernetes.io/managed-by": "stageflow",
    }
    command, args = task_command(spec)
    env: dict[str, str | EnvFrom] = dict(spec.env or {})
    if spec.image is None:
        env[OUTPUTS_ENV] = TERMINATION_LOG  # `stageflow task run` writes its outputs there
    container: dict[str, Any] = {
        "name": "task",
        "image": spec.image or settings.image,
        "imagePullPolicy": settings.pull_policy,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    if env:
        container["env"] = [env_var(key, value) for key, value in sorted(env.items())]
    if spec.resources:
        container["resources"] = spec.resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if spec.service_account_name:  # allowed by the policy compile_workflow checked
        pod_spec["serviceAccountName"] = spec.service_account_name
    else:
        if settings.service_account:
            pod_spec["serviceAccountName"] = settings.service_account
        pod_spec["automountServiceAccountToken"] = False
    job_spec: JobSpec = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if spec.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout_seconds))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": {TASK_ID_ANNOTATION: task_id},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


MAX_FAILURE_CHARS = 1024  # of a failed container's message, in the task's status


def _terminated(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `task` container's terminated state, if it has ended."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == "task":
            ended: dict[str, Any] | None = (container.get("state") or {}).get("terminated")
            return ended
    return None


def outputs_of(pod: Mapping[str, Any]) -> Any:
    """A finished task pod's outputs: its container's termination message, if it is JSON."""
    message = (_terminated(pod) or {}).get("message")
    if not message:
        return None
    try:
        return json.loads(message)
    except ValueError:
        return None  # a container of the user's own that wrote plain text there


def failure_of(pod: Mapping[str, Any]) -> str | None:
    """Why a task pod's container failed, in its own words: `exit code N: <message>`, the
    message being what it wrote to its termination log or, failing that, its log's tail."""
    ended = _terminated(pod)
    if ended is None or ended.get("exitCode") in (None, 0):
        return None
    text = " ".join((ended.get("message") or "").split())  # one line, whitespace folded
    if len(text) > MAX_FAILURE_CHARS:
        text = "…" + text[-MAX_FAILURE_CHARS:]  # the end says most: the error comes last
    detail = text or ended.get("reason") or ""
    return f"exit code {ended['exitCode']}" + (f": {detail}" if detail else "")


def _failed_condition(job: Mapping[str, Any]) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            found: dict[str, Any] = condition
            return found
    return None


def deadline_exceeded(job: Mapping[str, Any]) -> bool:
    """The Job was stopped by its activeDeadlineSeconds (the task's timeout)."""
    return (_failed_condition(job) or {}).get("reason") == "DeadlineExceeded"


def outcome(job: Mapping[str, Any]) -> TaskResult | None:
    """How a Job ended, from its conditions; None while it has not."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") == "Complete":
            return TaskResult(ok=True)
    failed = _failed_condition(job)
    if failed is None:
        return None
    if deadline_exceeded(job):
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return TaskResult(ok=False, message=f"timed out after {deadline}s (Job deadline)")
    reason = failed.get("reason") or "Failed"
    detail = failed.get("message") or ""
    return TaskResult(ok=False, message=f"Job failed: {reason}" + (f": {detail}" if detail else ""))
