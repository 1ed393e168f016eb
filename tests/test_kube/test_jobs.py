"""A task attempt as a Job: names, manifest, and how a Job's conditions read as a result."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stageflow.engine import TaskSpec
from stageflow.kube.jobs import (
    JobSettings,
    Owner,
    failure_of,
    job_name,
    label_value,
    manifest,
    outcome,
    outputs_of,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RUN = "0f6c7a1e-4a8b-4c55-9a8e-3a1c2b3d4e5f"
OWNER = Owner(namespace="team", name=RUN, uid="uid-1")
SETTINGS = JobSettings(image="registry.example/stageflow:0.1.0", service_account="runner")


@pytest.mark.parametrize(
    "task_id",
    [
        "task_a",
        "Fetch.Data",
        "x",
        "-",
        "UPPER_case.with.dots-and-dashes",
        "a" * 63,
        "9lives",
        "___",
    ],
)
def test_job_names_are_dns_labels_and_unique_per_attempt(task_id: str) -> None:
    names = {job_name(RUN, task_id, attempt) for attempt in (1, 2, 10)}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63
        assert DNS_LABEL.match(name), name
    assert job_name(RUN, task_id, 1) == job_name(RUN, task_id, 1)


def test_tasks_whose_slugs_collide_get_different_names() -> None:
    assert job_name(RUN, "a_b", 1) != job_name(RUN, "a.b", 1)


def test_label_values_are_valid() -> None:
    assert label_value("task_a") == "task_a"
    assert label_value("_odd!name_") == "odd-name"
    assert len(label_value("x" * 100)) == 63


def test_a_registered_task_runs_stageflow_task_run_in_the_stageflow_image() -> None:
    spec = TaskSpec(
        name="fetch", task="http_get", params={"url": "https://x.test"}, timeout_seconds=9.5
    )
    job = manifest(owner=OWNER, task_id="fetch", spec=spec, attempt=2, settings=SETTINGS)
    meta, body = job["metadata"], job["spec"]
    assert meta["name"] == job_name(RUN, "fetch", 2)
    assert meta["namespace"] == "team"
    assert meta["labels"]["stageflow.dev/run"] == RUN
    assert meta["labels"]["stageflow.dev/task"] == "fetch"
    assert meta["labels"]["stageflow.dev/attempt"] == "2"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "stageflow.dev/v1alpha1",
            "kind": "WorkflowRun",
            "name": RUN,
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["backoffLimit"] == 0
    assert body["activeDeadlineSeconds"] == 10
    assert body["ttlSecondsAfterFinished"] == 3600
    pod = body["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "runner"
    container = pod["containers"][0]
    assert container["image"] == "registry.example/stageflow:0.1.0"
    assert container["command"] == [
        "stageflow",
        "task",
        "run",
        "http_get",
        "--params",
        '{"url":"https://x.test"}',
    ]


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    job = manifest(
        owner=OWNER,
        task_id="t",
        spec=TaskSpec(name="t", task="task_a"),
        attempt=1,
        settings=SETTINGS,
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True


def test_a_task_with_its_own_container() -> None:
    spec = TaskSpec(
        name="build",
        image="busybox:1.36",
        command=["sh", "-c"],
        args=["echo hi"],
        env={"B": "2", "A": "1"},
        resources={"limits": {"cpu": "500m"}},
    )
    container = manifest(owner=OWNER, task_id="build", spec=spec, attempt=1, settings=SETTINGS)[
        "spec"
    ]["template"]["spec"]["containers"][0]
    assert container["image"] == "busybox:1.36"
    assert container["command"] == ["sh", "-c"]
    assert container["args"] == ["echo hi"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert container["resources"] == {"limits": {"cpu": "500m"}}


@pytest.mark.parametrize(
    ("conditions", "ok", "message"),
    [
        ([], None, None),
        ([{"type": "Complete", "status": "True"}], True, None),
        ([{"type": "Complete", "status": "False"}], None, None),
        (
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
            False,
            "Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
        ),
        (
            [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
            False,
            "timed out after 30s (Job deadline)",
        ),
    ],
)
def test_outcome_from_conditions(
    conditions: list[dict[str, str]], ok: bool | None, message: str | None
) -> None:
    result = outcome({"spec": {"activeDeadlineSeconds": 30}, "status": {"conditions": conditions}})
    if ok is None:
        assert result is None
    else:
        assert result is not None
        assert result.ok is ok
        assert result.message == message


def test_registered_tasks_write_outputs_to_the_termination_message() -> None:
    spec = TaskSpec(name="t", task="echo", env={"A": "1"})
    container = manifest(owner=OWNER, task_id="t", spec=spec, attempt=1, settings=SETTINGS)["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": "STAGEFLOW_OUTPUTS_FILE", "value": "/dev/termination-log"} in container["env"]
    assert {"name": "A", "value": "1"} in container["env"]
    own = manifest(
        owner=OWNER,
        task_id="t",
        spec=TaskSpec(name="t", image="busybox"),
        attempt=1,
        settings=SETTINGS,
    )
    assert "env" not in own["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("message", "outputs"),
    [('{"rows": 3}', {"rows": 3}), ("not json", None), ("", None), (None, None)],
)
def test_outputs_are_read_from_the_terminated_task_container(
    message: str | None, outputs: object
) -> None:
    terminated = {"exitCode": 0} | ({"message": message} if message is not None else {})
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "sidecar", "state": {"terminated": {"message": '{"no": 1}'}}},
                {"name": "task", "state": {"terminated": terminated}},
            ]
        }
    }
    assert outputs_of(pod) == outputs


def pod_ended(exit_code: int, message: str | None = None, reason: str = "Error") -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message is not None:
        terminated["message"] = message
    return {
        "status": {"containerStatuses": [{"name": "task", "state": {"terminated": terminated}}]}
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            pod_ended(1, "RuntimeError: the disk is full"),
            "exit code 1: RuntimeError: the disk is full",
        ),
        # FallbackToLogsOnError: a log's tail, folded onto one line
        (
            pod_ended(2, "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"),
            "exit code 2: Traceback (most recent call last): ... KeyError: 'x'",
        ),
        (pod_ended(137, None, reason="OOMKilled"), "exit code 137: OOMKilled"),
        (pod_ended(0, '{"rows": 3}'), None),  # it did not fail
        ({"status": {"containerStatuses": [{"name": "task", "state": {"running": {}}}]}}, None),
        ({"status": {}}, None),
    ],
)
def test_why_a_task_pod_failed(pod: dict[str, Any], expected: str | None) -> None:
    assert failure_of(pod) == expected


def test_a_long_failure_keeps_its_end() -> None:
    reason = failure_of(pod_ended(1, "x" * 5000 + " KeyError: 'x'"))
    assert reason is not None
    assert reason.endswith("KeyError: 'x'")
    assert len(reason) < 1100


def test_task_pods_mount_no_service_account_token_unless_the_task_names_one() -> None:
    """Issue 11: a task's container gets no Kubernetes identity by default; a task that
    names a service account (which the policy allowed) runs as it, with its token."""

    def pod(spec: TaskSpec) -> dict[str, Any]:
        job = manifest(owner=OWNER, task_id="t", spec=spec, attempt=1, settings=SETTINGS)
        pod_spec: dict[str, Any] = job["spec"]["template"]["spec"]
        return pod_spec

    plain = pod(TaskSpec(name="t", task="task_a"))
    assert plain["serviceAccountName"] == "runner"  # the operator's default for task pods
    assert plain["automountServiceAccountToken"] is False
    named = pod(TaskSpec(name="t", task="task_a", service_account_name="reporter"))
    assert named["serviceAccountName"] == "reporter"
    assert "automountServiceAccountToken" not in named


def test_an_env_value_may_come_from_a_secret() -> None:
    spec = TaskSpec.model_validate(
        {
            "name": "t",
            "image": "busybox:1.36",
            "env": {
                "PLAIN": "1",
                "TOKEN": {"valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            },
        }
    )
    container = manifest(owner=OWNER, task_id="t", spec=spec, attempt=1, settings=SETTINGS)["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "PLAIN", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
    ]
