"""Job tasks on kmock: one Job per attempt, completed, failed, retried, cancelled, re-attached."""

from __future__ import annotations

from typing import Any

from stageflow.kube.jobs import job_name
from tests.support.kmock_operator import NAMESPACE, STAMPING, Cluster, StartOperator
from tests.support.polling import eventually

pytestmark = STAMPING


def mixed(**job_task: Any) -> dict[str, Any]:
    job = {"name": "pod", "task": "task_b", "executor": "job", **job_task}
    return {
        "workflow": [
            {"type": "parallel", "tasks": [{"name": "here", "task": "task_a"}, job]},
            {"type": "parallel", "tasks": [{"name": "after", "task": "task_c"}]},
        ]
    }


def task(obj: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = obj["status"]["tasks"][name]
    return entry


def recorded_job(obj: dict[str, Any] | None, name: str) -> str | None:
    """The jobName a run's status records for task `name` (None before it does)."""
    entry = ((obj or {}).get("status") or {}).get("tasks", {}).get(name, {})
    job: str | None = entry.get("jobName")
    return job


async def job_appears(cluster: Cluster, name: str) -> dict[str, Any]:
    async def present() -> bool:
        return name in await cluster.jobs()

    await eventually(present)
    return (await cluster.jobs())[name]


async def test_a_job_task_runs_as_a_job_and_completes(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(task_image="registry.test/stageflow:9")
    run = await cluster.create(mixed(timeoutSeconds=60))
    expected = job_name(run, "pod", 1)
    job = await job_appears(cluster, expected)
    assert job["metadata"]["ownerReferences"][0]["name"] == run
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/stageflow:9"
    assert job["spec"]["activeDeadlineSeconds"] == 60

    obj = await cluster.wait_for(
        run,
        lambda o: recorded_job(o, "pod") == expected,
    )
    assert obj is not None
    assert task(obj, "pod")["phase"] == "Running"
    assert task(obj, "pod")["executor"] == "job"

    await cluster.finish_job(expected, ok=True)
    obj = await cluster.wait_for_phase(run, "Succeeded")
    assert {name: entry["phase"] for name, entry in obj["status"]["tasks"].items()} == {
        "here": "Succeeded",
        "pod": "Succeeded",
        "after": "Succeeded",
    }
    assert cluster.job_creations() == [expected]


async def test_a_failed_job_is_retried_as_a_new_job_for_the_next_attempt(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    run = await cluster.create(mixed(retries=1, retryBackoffSeconds=0))
    first = job_name(run, "pod", 1)
    await job_appears(cluster, first)
    await cluster.finish_job(first, ok=False)
    second = job_name(run, "pod", 2)
    await job_appears(cluster, second)
    await cluster.finish_job(second, ok=False)
    obj = await cluster.wait_for_phase(run, "Failed")
    pod = task(obj, "pod")
    assert pod["phase"] == "Failed"
    assert pod["attempts"] == 2
    assert pod["jobName"] == second
    assert pod["message"] == "Job failed: BackoffLimitExceeded: the container exited with 1"
    assert task(obj, "after")["phase"] == "Skipped"
    assert cluster.job_creations() == [first, second]


async def test_a_failed_job_task_says_why_in_its_containers_words(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """`stageflow task run` writes its error to the termination log (or the kubelet puts
    the log's tail there): the task's message is that, not just "Job failed"."""
    await start_operator()
    run = await cluster.create(mixed())
    name = job_name(run, "pod", 1)
    await job_appears(cluster, name)
    await cluster.add_task_pod(
        name, termination_message="RuntimeError: the disk is full", exit_code=1
    )
    await cluster.finish_job(name, ok=False)
    obj = await cluster.wait_for_phase(run, "Failed")
    assert task(obj, "pod")["message"] == "exit code 1: RuntimeError: the disk is full"


async def test_a_job_deadline_is_a_timeout(cluster: Cluster, start_operator: StartOperator) -> None:
    await start_operator()
    run = await cluster.create(mixed(timeoutSeconds=30))
    name = job_name(run, "pod", 1)
    await job_appears(cluster, name)
    await cluster.finish_job(name, ok=False, reason="DeadlineExceeded")
    obj = await cluster.wait_for_phase(run, "Failed")
    assert task(obj, "pod")["message"] == "timed out after 30s (Job deadline)"


async def test_cancelling_the_run_deletes_its_running_job(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    run = await cluster.create(mixed())
    name = job_name(run, "pod", 1)
    await job_appears(cluster, name)
    await cluster.kube.patch_run(NAMESPACE, run, {"spec": {"cancelRequested": True}})
    obj = await cluster.wait_for_phase(run, "Cancelled")
    assert task(obj, "pod")["phase"] == "Cancelled"

    async def deleted() -> bool:
        return name not in await cluster.jobs()

    await eventually(deleted)


async def test_a_restarted_operator_reattaches_to_the_running_job(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    first_operator = await start_operator()
    run = await cluster.create(mixed())
    name = job_name(run, "pod", 1)
    await job_appears(cluster, name)
    await cluster.wait_for(
        run,
        lambda o: recorded_job(o, "pod") == name,
    )
    await first_operator.stop()
    assert name in await cluster.jobs(), "a shut-down operator must leave the Job running"

    await start_operator()
    await cluster.finish_job(name, ok=True)
    obj = await cluster.wait_for_phase(run, "Succeeded")
    assert task(obj, "pod")["attempts"] == 1
    assert cluster.job_creations() == [name], "the same attempt's Job was created twice"


async def test_a_job_deleted_by_someone_else_fails_its_task(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    run = await cluster.create(mixed())
    name = job_name(run, "pod", 1)
    await job_appears(cluster, name)
    await cluster.kube.delete_job(NAMESPACE, name)
    obj = await cluster.wait_for_phase(run, "Failed")
    assert task(obj, "pod")["message"] == f"Job {name} was deleted before it finished"


async def test_a_job_task_s_outputs_reach_the_next_task(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    spec = {
        "dag": [
            {"name": "count", "task": "echo", "executor": "job", "params": {"rows": 0}},
            {
                "name": "report",
                "task": "echo",
                "params": {"rows": "{{ tasks.count.outputs.rows }}"},
            },
        ]
    }
    run = await cluster.create(spec)
    name = job_name(run, "count", 1)
    job = await job_appears(cluster, name)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["stageflow", "task", "run", "echo", "--params", '{"rows":0}']
    await cluster.add_task_pod(name, termination_message='{"rows": 42}')
    await cluster.finish_job(name, ok=True)
    obj = await cluster.wait_for_phase(run, "Succeeded")
    assert task(obj, "count")["outputs"] == {"rows": 42}
    assert task(obj, "report")["outputs"] == {"rows": 42}


async def test_a_run_made_without_the_api_naming_another_image_fails_and_creates_no_job(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """Issue 11: the operator enforces the API's image allowlist (STAGEFLOW_TASK_IMAGES),
    so `kubectl create` is no way around it."""
    await start_operator(task_image="registry.test/stageflow:9", task_images=["busybox:1.36"])
    evil = await cluster.create(mixed(image="evil.example/miner:latest", command=["mine"]))
    obj = await cluster.wait_for_phase(evil, "Failed")
    assert obj["status"]["message"] == (
        "Invalid workflow: Image not allowed: evil.example/miner:latest "
        "(task pod; STAGEFLOW_TASK_IMAGES allows: busybox:1.36)"
    )
    allowed = await cluster.create(mixed(image="busybox:1.36", command=["true"]))
    await job_appears(cluster, job_name(allowed, "pod", 1))
    assert cluster.job_creations() == [job_name(allowed, "pod", 1)]  # none for the refused run
