"""End to end on a real kube-apiserver: the API processes, the operator process, Redis.

What a user does and sees: submit over HTTP, `kubectl get workflowruns`, read from
either API replica, Redis going away and coming back, the operator killed mid-run.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest
import redis

from stageflow.store.keys import tasks_key
from tests.support.api import submit, wait_for_run, wait_for_task
from tests.support.cluster import Cluster, kubectl, workflow_run
from tests.support.polling import wait_until
from tests.support.workflows import SEED

pytestmark = pytest.mark.e2e


def mirrored_phases(cluster: Cluster, namespace: str, run_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        return dict(client.hgetall(tasks_key(namespace, run_id)))  # type: ignore[arg-type]
    finally:
        client.close()


@pytest.fixture
def replicas(e2e_cluster: Cluster, k8s_namespace: str) -> tuple[httpx.Client, httpx.Client]:
    return e2e_cluster.start_api(k8s_namespace), e2e_cluster.start_api(k8s_namespace)


def test_seed_becomes_a_workflow_run_with_status_in_its_subresource(
    replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    first, second = replicas
    run_id = submit(first, SEED)
    wait_for_run(first, run_id, timeout=30)

    obj = workflow_run(k8s_namespace, run_id)
    assert obj["kind"] == "WorkflowRun"
    assert obj["spec"]["cancelRequested"] is False
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert status["progress"] == "3/3"
    for name in ("task_a", "task_b", "task_c"):
        task = status["tasks"][name]
        assert task["phase"] == "Succeeded"
        assert task["attempts"] == 1
        assert task["startedAt"] <= task["finishedAt"]
    # The status subresource is on: a status written to the main resource would be
    # dropped, and status writes never bump the spec's generation.
    assert obj["metadata"]["generation"] == 1
    assert status["observedGeneration"] == 1
    assert status["conditions"][0] == {
        **status["conditions"][0],
        "type": "Succeeded",
        "status": "True",
        "reason": "Succeeded",
    }

    table = kubectl("get", "workflowruns", "-n", k8s_namespace)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "AGE"]
    assert row.split()[:3] == [run_id, "Succeeded", "3/3"]
    wide = kubectl("get", "wfr", "-n", k8s_namespace, "-o", "wide").splitlines()[0]
    assert wide.split() == ["NAME", "PHASE", "PROGRESS", "AGE", "RUN-NAME", "STARTED", "MESSAGE"]
    assert run_id in kubectl("get", "stageflow", "-n", k8s_namespace)  # the category

    assert second.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Succeeded",
        "task_b": "Succeeded",
        "task_c": "Succeeded",
    }


def test_the_mirror_matches_the_api_on_both_replicas(
    e2e_cluster: Cluster, replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    first, second = replicas
    run_id = submit(first, {"workflow": [{"type": "parallel", "tasks": ["task_a", "fail"]}]})
    wait_for_run(second, run_id, timeout=30)
    expected = {"task_a": "Succeeded", "fail": "Failed"}
    wait_until(lambda: mirrored_phases(e2e_cluster, k8s_namespace, run_id) == expected)
    assert first.get(f"/workflow/{run_id}/status").json() == expected
    assert second.get(f"/workflow/{run_id}/status").json() == expected
    assert [item["run_id"] for item in second.get("/workflows").json()["items"]] == [run_id]

    long_run = submit(
        second,
        {
            "workflow": [
                {
                    "type": "parallel",
                    "tasks": [{"name": "s", "task": "sleep", "params": {"seconds": 60}}],
                }
            ]
        },
    )
    wait_for_task(first, long_run, "s", "Running", timeout=30)
    assert first.post(f"/workflow/{long_run}/cancel").status_code == 202
    assert wait_for_run(second, long_run, timeout=30)["status"]["phase"] == "Cancelled"


def test_redis_away_and_back(
    e2e_cluster: Cluster, replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    first, second = replicas
    before = submit(first, SEED)
    wait_for_run(first, before, timeout=30)
    all_succeeded = {"task_a": "Succeeded", "task_b": "Succeeded", "task_c": "Succeeded"}
    wait_until(lambda: mirrored_phases(e2e_cluster, k8s_namespace, before) == all_succeeded)

    e2e_cluster.redis.stop()
    try:
        during = submit(second, SEED)
        run = wait_for_run(first, during, timeout=30)
        assert run["status"]["phase"] == "Succeeded"
        assert second.get(f"/workflow/{during}/status").json() == all_succeeded
        listed = {item["run_id"] for item in first.get("/workflows").json()["items"]}
        assert listed == {before, during}
        ready = first.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"].startswith("unavailable")
    finally:
        e2e_cluster.redis.start()  # same port, and empty: it kept nothing on disk

    # The operator notices Redis is back and resyncs: both runs, the one it missed too.
    wait_until(lambda: mirrored_phases(e2e_cluster, k8s_namespace, during) == all_succeeded)
    wait_until(lambda: mirrored_phases(e2e_cluster, k8s_namespace, before) == all_succeeded)
    assert first.get("/readyz").json()["checks"]["redis"] == "ok"


def test_an_operator_killed_mid_run_is_replaced_and_the_run_finishes(
    e2e_cluster: Cluster, replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    first, _ = replicas
    body = {
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    "task_a",
                    # long enough that on a loaded machine the kill still lands in it
                    {"name": "slow", "task": "sleep", "params": {"seconds": 8}},
                    "task_c",
                ],
            }
        ]
    }
    run_id = submit(first, body)
    wait_for_task(first, run_id, "slow", "Running", timeout=30)
    e2e_cluster.operator.kill()

    obj = workflow_run(k8s_namespace, run_id)
    assert obj["status"]["phase"] == "Running"
    assert obj["status"]["tasks"]["task_a"]["phase"] == "Succeeded"
    assert obj["status"]["tasks"]["slow"]["phase"] == "Running"  # what the kill interrupted

    e2e_cluster.operator.start()
    run = wait_for_run(first, run_id, timeout=60)
    assert run["status"]["phase"] == "Succeeded"
    tasks = workflow_run(k8s_namespace, run_id)["status"]["tasks"]
    assert tasks["task_a"]["attempts"] == 1, "a task that had succeeded ran again"
    assert tasks["slow"]["attempts"] == 2
    assert tasks["task_c"]["attempts"] == 1


def test_a_500_task_stage_completes_in_a_few_status_patches(
    e2e_cluster: Cluster, replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    first, _ = replicas
    tasks = [{"name": f"n{i}", "task": "noop"} for i in range(500)]
    run_id = submit(first, {"workflow": [{"type": "parallel", "tasks": tasks}]})
    run = wait_for_run(first, run_id, timeout=120)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["progress"] == "500/500"
    pattern = (
        rf"WorkflowRun {k8s_namespace}/{run_id} Succeeded: "
        r"500/500 tasks in ([\d.]+)s, (\d+) status patches"
    )
    wait_until(lambda: re.search(pattern, e2e_cluster.operator.log()) is not None)
    found = re.search(pattern, e2e_cluster.operator.log())
    assert found is not None
    seconds, patches = float(found.group(1)), int(found.group(2))
    print(f"\n500-task stage: {patches} status patches for 1,500 transitions, {seconds:.2f}s")
    assert patches <= 50, "status writes were not coalesced"


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (
            {"workflow": [{"type": "diagonal", "tasks": [{"name": "a", "task": "task_a"}]}]},
            "Unsupported value",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a", "retries": -1}]},
            "should be greater than or equal to 0",
        ),
        ({"dag": [{"name": "bad name!", "task": "task_a"}]}, "should match"),
        ({"dag": [{"name": "a"}]}, "spec.dag"),
        ({"failFast": True}, "spec"),
        (
            {
                "workflow": [{"type": "parallel", "tasks": [{"name": "a", "task": "task_a"}]}],
                "dag": [{"name": "b", "task": "task_b"}],
            },
            "spec",
        ),
    ],
)
def test_the_apiserver_rejects_what_the_api_rejects(
    k8s_namespace: str, spec: dict[str, Any], complaint: str
) -> None:
    manifest = {
        "apiVersion": "stageflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "invalid", "namespace": k8s_namespace},
        "spec": spec,
    }
    done = subprocess.run(
        ["kubectl", "create", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, "the apiserver accepted an invalid WorkflowRun"
    assert "is invalid" in done.stderr
    assert complaint in done.stderr


def test_redis_killed_under_load_then_the_mirror_equals_the_workflow_runs(
    e2e_cluster: Cluster, replicas: tuple[httpx.Client, httpx.Client], k8s_namespace: str
) -> None:
    """Issue 9's fault: Redis SIGKILLed while runs are submitted and running, restarted
    empty. Within seconds the mirror holds every WorkflowRun, in its latest state, and
    both API replicas list and report exactly what the WorkflowRuns say."""
    first, second = replicas
    submitted = [submit((first, second)[i % 2], SEED) for i in range(60)]
    e2e_cluster.redis.kill()
    try:
        submitted += [submit((first, second)[i % 2], SEED) for i in range(30)]
    finally:
        e2e_cluster.redis.start()  # same port, empty
    submitted += [submit((first, second)[i % 2], SEED) for i in range(30)]  # racing the resync

    def workflow_runs() -> dict[str, dict[str, str]]:
        listing = json.loads(kubectl("get", "wfr", "-n", k8s_namespace, "-o", "json"))
        return {
            obj["metadata"]["name"]: {
                task: entry["phase"] for task, entry in obj["status"]["tasks"].items()
            }
            for obj in listing["items"]
            if obj.get("status", {}).get("phase") == "Succeeded"
        }

    wait_until(lambda: len(workflow_runs()) == len(submitted), within=120)
    truth = workflow_runs()
    assert set(truth) == set(submitted)

    def listed(client: httpx.Client) -> set[str]:
        page = client.get("/workflows", params={"limit": 500}).json()
        return {item["run_id"] for item in page["items"]}

    wait_until(
        lambda: (
            all(mirrored_phases(e2e_cluster, k8s_namespace, run) == truth[run] for run in truth)
            and listed(first) == listed(second) == set(truth)
        ),
        within=15,
    )
    for client in (first, second):
        for run_id in submitted:
            assert client.get(f"/workflow/{run_id}/status").json() == truth[run_id]
