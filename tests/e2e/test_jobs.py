"""Job tasks on a real apiserver and controller-manager (no kubelet: the test plays it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stageflow.kube.jobs import job_name
from tests.support.api import submit, wait_for_run, wait_for_task
from tests.support.cluster import Cluster, kubectl
from tests.support.kubelet import finished_pod_status
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def mixed(**job_task: Any) -> dict[str, Any]:
    return {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    "task_a",
                    {"name": "in_pod", "task": "task_b", "executor": "job", **job_task},
                ],
            },
            {"type": "sequential", "tasks": ["task_c"]},
        ]
    }


def jobs_of(namespace: str, run_id: str) -> list[str]:
    listing = json.loads(
        kubectl("get", "jobs", "-n", namespace, "-l", f"stageflow.dev/run={run_id}", "-o", "json")
    )
    return sorted(job["metadata"]["name"] for job in listing["items"])


def finish(namespace: str, job: str, *, ok: bool) -> None:
    """What the kubelet and the job controller would write when the pod ends."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {
        "type": "Complete" if ok else "Failed",
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }
    if not ok:
        condition |= {
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    status = {
        "active": 0,
        "conditions": [condition],
        **({"succeeded": 1, "completionTime": now} if ok else {"failed": 1}),
    }
    kubectl(
        "patch",
        "job",
        job,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


@pytest.fixture
def api(e2e_cluster: Cluster, k8s_namespace: str) -> httpx.Client:
    return e2e_cluster.start_api(k8s_namespace)


def test_a_run_mixing_in_process_and_job_tasks_succeeds(
    api: httpx.Client, k8s_namespace: str
) -> None:
    run_id = submit(api, mixed(timeoutSeconds=300))
    name = job_name(run_id, "in_pod", 1)
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [name])
    job = json.loads(kubectl("get", "job", name, "-n", k8s_namespace, "-o", "json"))
    assert job["metadata"]["ownerReferences"][0]["kind"] == "WorkflowRun"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 300
    pods = json.loads(
        kubectl("get", "pods", "-n", k8s_namespace, "-l", f"job-name={name}", "-o", "json")
    )
    assert len(pods["items"]) == 1, "the controller-manager makes the Job's pod"
    wait_for_task(api, run_id, "in_pod", "Running", timeout=30)

    finish(k8s_namespace, name, ok=True)
    run = wait_for_run(api, run_id, timeout=60)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["tasks"]["in_pod"]["executor"] == "job"
    assert run["status"]["tasks"]["in_pod"]["jobName"] == name
    assert run["status"]["tasks"]["task_a"]["executor"] == "inprocess"


def test_a_failed_job_fails_its_task_and_a_retry_is_a_second_job(
    api: httpx.Client, k8s_namespace: str
) -> None:
    run_id = submit(api, mixed(retries=1, retryBackoffSeconds=0))
    first, second = job_name(run_id, "in_pod", 1), job_name(run_id, "in_pod", 2)
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [first])
    finish(k8s_namespace, first, ok=False)
    wait_until(lambda: second in jobs_of(k8s_namespace, run_id))
    assert second.endswith("-a2")
    finish(k8s_namespace, second, ok=False)
    run = wait_for_run(api, run_id, timeout=60)
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["tasks"]["in_pod"]["attempts"] == 2
    assert run["status"]["tasks"]["task_c"]["phase"] == "Skipped"


def test_cancelling_deletes_running_jobs(api: httpx.Client, k8s_namespace: str) -> None:
    run_id = submit(api, mixed())
    wait_until(lambda: len(jobs_of(k8s_namespace, run_id)) == 1)
    assert api.post(f"/workflow/{run_id}/cancel").status_code == 202
    assert wait_for_run(api, run_id, timeout=30)["status"]["phase"] == "Cancelled"
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [])


def test_deleting_the_workflow_run_removes_its_jobs(api: httpx.Client, k8s_namespace: str) -> None:
    run_id = submit(api, mixed())
    wait_until(lambda: len(jobs_of(k8s_namespace, run_id)) == 1)
    kubectl("delete", "wfr", run_id, "-n", k8s_namespace, "--wait=false")
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [], within=60)
    assert api.get(f"/workflow/{run_id}").status_code == 404


def test_an_operator_killed_mid_job_does_not_create_it_twice(
    e2e_cluster: Cluster, api: httpx.Client, k8s_namespace: str
) -> None:
    run_id = submit(api, mixed())
    name = job_name(run_id, "in_pod", 1)
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [name])
    wait_for_task(api, run_id, "in_pod", "Running", timeout=30)
    e2e_cluster.operator.kill()
    e2e_cluster.operator.start()
    finish(k8s_namespace, name, ok=True)
    run = wait_for_run(api, run_id, timeout=60)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["tasks"]["in_pod"]["attempts"] == 1
    assert jobs_of(k8s_namespace, run_id) == [name]


def test_a_job_task_without_a_started_pod_has_no_logs_yet(
    api: httpx.Client, k8s_namespace: str
) -> None:
    run_id = submit(api, mixed())
    wait_until(lambda: len(jobs_of(k8s_namespace, run_id)) == 1)
    wait_for_task(api, run_id, "in_pod", "Running", timeout=30)
    response = api.get(f"/workflow/{run_id}/tasks/in_pod/logs")
    assert response.status_code == 404
    assert response.json() == {"detail": "No logs yet for task in_pod: its pod has not started"}
    assert (
        api.get(f"/workflow/{run_id}/tasks/task_a/logs").text
        == "--- attempt 1 ---\nRunning task A\n"
    )


def test_a_job_task_returns_outputs_through_its_termination_message(
    api: httpx.Client, k8s_namespace: str
) -> None:
    body = {
        "dag": [
            {"name": "count", "task": "echo", "executor": "job", "params": {"rows": 0}},
            {
                "name": "report",
                "task": "echo",
                "params": {"rows": "{{ tasks.count.outputs.rows }}"},
            },
        ]
    }
    run_id = submit(api, body)
    name = job_name(run_id, "count", 1)
    wait_until(lambda: jobs_of(k8s_namespace, run_id) == [name])
    pods: list[dict[str, Any]] = []

    def pod_exists() -> bool:
        pods[:] = json.loads(
            kubectl("get", "pods", "-n", k8s_namespace, "-l", f"job-name={name}", "-o", "json")
        )["items"]
        return bool(pods)

    wait_until(pod_exists)
    status = finished_pod_status('{"rows": 42}')  # as the kubelet would write it
    kubectl(
        "patch",
        "pod",
        pods[0]["metadata"]["name"],
        "-n",
        k8s_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    finish(k8s_namespace, name, ok=True)
    run = wait_for_run(api, run_id, timeout=60)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["tasks"]["count"]["outputs"] == {"rows": 42}
    assert run["status"]["tasks"]["report"]["outputs"] == {"rows": 42}
