"""stageflow on a real node: the chart, the image and Job tasks where pods really run.

The tests run in file order on one release: workflows (in-process, Job, a task's own
image, retries, logs), `helm test`, `helm upgrade` to the example's image, the
data-quality example with every task in a Job pod, and `helm uninstall` last.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.chart import CHART
from tests.support.node import (
    NAMESPACE,
    RELEASE,
    USER_RBAC,
    Node,
    PortForward,
    install_seconds,
    note,
    pods_ready_seconds,
    wait_for,
)
from tests.support.paths import ROOT

pytestmark = [pytest.mark.node, pytest.mark.timeout(600)]

FINISHED = {"Succeeded", "Failed", "Cancelled"}
SEED: dict[str, Any] = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}


def api(release: PortForward) -> httpx.Client:
    assert release.client is not None
    return release.client


def run_to_end(release: PortForward, body: dict[str, Any], *, within: float = 240) -> Any:
    """Submit through the Service and wait for the run to finish; note its final phase."""
    client = api(release)
    response = client.post("/workflow", json=body)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]

    def finished() -> Any:
        run = client.get(f"/workflow/{run_id}").json()
        return run if run.get("status", {}).get("phase") in FINISHED else None

    run = wait_for(finished, within=within, what=f"run {run_id} to finish")
    tasks = run["status"]["tasks"]
    summary = ", ".join(
        f"{name} {task['phase']}" + (f" (Job {task['jobName']})" if task.get("jobName") else "")
        for name, task in tasks.items()
    )
    note(f"run {run.get('name') or run_id}: {run['status']['phase']}: {summary}")
    return run


def job_pod(node: Node, job: str) -> dict[str, Any]:
    """The (only) pod of a Job, read with the admin's credentials to check what ran."""
    pods = node.pods(f"job-name={job}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    ended: dict[str, Any] = state["terminated"]
    return ended


def test_the_seed_workflow(release: PortForward) -> None:
    run = run_to_end(release, SEED)
    assert run["status"]["phase"] == "Succeeded"
    assert {name: task["phase"] for name, task in run["status"]["tasks"].items()} == {
        "task_a": "Succeeded",
        "task_b": "Succeeded",
        "task_c": "Succeeded",
    }


def test_a_mixed_workflow_runs_its_job_task_in_a_pod(node: Node, release: PortForward) -> None:
    body = {
        "name": "mixed",
        "workflow": [
            {
                "type": "parallel",
                "tasks": ["task_a", {"name": "task_b", "task": "task_b", "executor": "job"}],
            },
            {"type": "sequential", "tasks": ["task_c"]},
        ],
    }
    run = run_to_end(release, body)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    tasks = run["status"]["tasks"]
    assert tasks["task_a"]["executor"] == "inprocess"
    assert tasks["task_b"]["executor"] == "job"
    pod = job_pod(node, tasks["task_b"]["jobName"])
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["exitCode"] == 0
    command = pod["spec"]["containers"][0]["command"]
    assert command[:4] == ["stageflow", "task", "run", "task_b"]  # in our image


def test_job_outputs_travel_in_the_termination_message(node: Node, release: PortForward) -> None:
    """`stageflow task run` in the image writes the outputs to /dev/termination-log; the
    operator reads them from the pod and a later task gets them, types kept."""
    body = {
        "name": "outputs",
        "dag": [
            {
                "name": "produce",
                "task": "echo",
                "executor": "job",
                "params": {"rows": 3, "table": "orders", "ok": True},
            },
            {
                "name": "consume",
                "task": "echo",
                "params": {
                    "rows": "{{ tasks.produce.outputs.rows }}",
                    "all": "{{ tasks.produce.outputs }}",
                },
            },
        ],
    }
    run = run_to_end(release, body)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    produce = run["status"]["tasks"]["produce"]
    assert produce["outputs"] == {"rows": 3, "table": "orders", "ok": True}
    message = terminated(job_pod(node, produce["jobName"]))["message"]
    assert json.loads(message) == produce["outputs"]
    assert run["status"]["tasks"]["consume"]["outputs"] == {
        "rows": 3,
        "all": {"rows": 3, "table": "orders", "ok": True},
    }


def test_a_task_with_its_own_image(node: Node, release: PortForward) -> None:
    script = (
        "import json, sys; print('hello from', sys.version.split()[0]);"
        "open('/dev/termination-log', 'w').write(json.dumps({'python': sys.version[:4]}))"
    )
    body = {
        "name": "own-image",
        "dag": [
            {
                "name": "own",
                "image": "python:3.11-slim",
                "command": ["python3", "-c", script],
            }
        ],
    }
    run = run_to_end(release, body)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    own = run["status"]["tasks"]["own"]
    assert own["outputs"] == {"python": "3.11"}
    pod = job_pod(node, own["jobName"])
    assert pod["spec"]["containers"][0]["image"] == "python:3.11-slim"
    logs = api(release).get(f"/workflow/{run['run_id']}/tasks/own/logs")
    assert logs.status_code == 200, logs.text
    assert "hello from 3.11" in logs.text


def test_a_failing_job_task_is_retried_as_new_jobs(node: Node, release: PortForward) -> None:
    body = {
        "name": "retries",
        "dag": [
            {
                "name": "flaky",
                "task": "fail",
                "executor": "job",
                "params": {"message": "the disk is full"},
                "retries": 2,
                "retryBackoffSeconds": 0.5,
            }
        ],
    }
    run = run_to_end(release, body)
    assert run["status"]["phase"] == "Failed"
    flaky = run["status"]["tasks"]["flaky"]
    assert flaky["attempts"] == 3
    assert "the disk is full" in flaky["message"]  # the container's own words, not just "Failed"
    jobs = node.json("get", "jobs", "-n", NAMESPACE, "-l", f"stageflow.dev/run={run['run_id']}")
    assert sorted(job["metadata"]["labels"]["stageflow.dev/attempt"] for job in jobs["items"]) == [
        "1",
        "2",
        "3",
    ]
    for job in jobs["items"]:
        assert terminated(job_pod(node, job["metadata"]["name"]))["exitCode"] == 1


def test_the_logs_of_a_job_task(release: PortForward) -> None:
    """Read through the API's own service account (pods, pods/log), from the Job's pod."""
    run = run_to_end(
        release, {"name": "logs", "dag": [{"name": "hello", "task": "task_a", "executor": "job"}]}
    )
    assert run["status"]["phase"] == "Succeeded"
    logs = api(release).get(f"/workflow/{run['run_id']}/tasks/hello/logs")
    assert logs.status_code == 200, logs.text
    assert "Running task A" in logs.text


def test_helm_test_passes(node: Node, release: PortForward) -> None:
    done = node.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "180s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Phase:          Succeeded" in done.stdout
    note("helm test: Succeeded")


def test_helm_upgrade_to_the_example_image(
    node: Node, release: PortForward, example_image: str
) -> None:
    """A changed value rolls the pods: the example's image (the user's own tasks) and one API
    replica instead of two."""
    started = time.monotonic()
    seconds = install_seconds(
        node,
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "image.repository=stageflow-data-quality",
        "--set",
        "api.replicas=1",
    )
    ready_seconds = pods_ready_seconds(node, started, expected=4)
    note(f"helm upgrade --wait: {seconds:.1f}s; all 4 pods Ready {ready_seconds:.1f}s after")
    for component in ("api", "operator"):
        deployment = node.json("get", "deployment", f"{RELEASE}-{component}", "-n", NAMESPACE)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "stageflow-data-quality:0.1.0"
        assert deployment["spec"]["replicas"] == (1 if component == "api" else 2)
    release.start()  # the pod behind the old port-forward is gone
    tasks = {task["name"] for task in api(release).get("/tasks").json()}
    assert {"dq_profile", "dq_check_column", "dq_report"} <= tasks


def test_the_data_quality_example_with_every_task_in_a_job_pod(
    node: Node, release: PortForward
) -> None:
    pipeline = json.loads((ROOT / "examples" / "data_quality" / "pipeline.json").read_text())
    run = run_to_end(release, {**pipeline, "executor": "job"}, within=420)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    tasks = run["status"]["tasks"]
    ran = {name: task for name, task in tasks.items() if name != "check"}  # check: the fan-out
    assert all(task["executor"] == "job" and task.get("jobName") for task in ran.values()), ran
    assert [tasks[f"check[{i}]"]["phase"] for i in range(6)] == ["Succeeded"] * 6
    assert tasks["clean"]["iterations"] == 4
    assert tasks["clean"]["outputs"]["remaining"] == 2
    assert tasks["report"]["outputs"]["anomalies_before"] == 14
    assert tasks["report"]["outputs"]["anomalies_after"] == 2
    for name in ("profile", "report"):
        pod = job_pod(node, tasks[name]["jobName"])
        assert pod["spec"]["containers"][0]["image"] == "stageflow-data-quality:0.1.0"
        assert terminated(pod)["exitCode"] == 0


def test_helm_uninstall_leaves_nothing_but_the_crd(node: Node, release: PortForward) -> None:
    """Every object of the release goes; the CRD stays (Helm never deletes crds/). The runs
    are the user's data, as Argo's Workflows are: deleting them deletes their Jobs and pods
    (owner references), and then the namespace holds only what Kubernetes put there."""
    release.stop()
    done = node.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "120s")
    assert done.returncode == 0, done.stderr
    kinds = "deployments,replicasets,services,serviceaccounts,roles,rolebindings,pdb,secrets"
    wait_for(
        lambda: not node.pods("app.kubernetes.io/instance=" + RELEASE),
        within=120,
        what="the release's pods gone",
    )
    left = node.json("get", kinds, "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")
    assert left["items"] == []
    assert node.json("get", "secrets", "-n", NAMESPACE, "-l", "owner=helm")["items"] == []
    node.kubectl("get", "crd", "workflowruns.stageflow.dev")  # still there

    node.kubectl("delete", "wfr", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    node.kubectl("delete", "-f", "-", stdin=USER_RBAC)  # the test's own user, not the chart's

    def only_defaults() -> bool:
        everything = node.json(
            "get", f"{kinds},configmaps,pods,jobs,workflowruns", "-n", NAMESPACE
        )["items"]
        names = {(item["kind"], item["metadata"]["name"]) for item in everything}
        return {kind_name for kind_name in names if kind_name[0] != "Secret"} <= {
            ("ServiceAccount", "default"),
            ("ConfigMap", "kube-root-ca.crt"),
        } and all(
            item["type"] == "kubernetes.io/service-account-token"
            for item in everything
            if item["kind"] == "Secret"
        )

    wait_for(only_defaults, within=120, what="an empty namespace after the runs were deleted")
    note("helm uninstall: nothing left but the CRD (runs deleted by the user took their Jobs)")
