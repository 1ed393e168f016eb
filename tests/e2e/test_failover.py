"""Two operators with leader election on the real apiserver: the leader SIGKILLed mid-run,
then a graceful handover. From the tasks' own execution log: the standby finishes every
run, no task whose success was recorded runs again, no task runs on both at once."""

from __future__ import annotations

import json
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import submit, wait_for_run
from tests.support.cluster import Cluster, kubectl
from tests.support.failover import Candidate, candidates, executions, wait_for_leader

pytestmark = pytest.mark.e2e

LEASE, RENEW, RETRY = 8, 5.0, 0.5


@pytest.fixture
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="stageflow-failover-"))


def this_namespace(
    e2e_cluster: Cluster, namespace: str, workdir: Path, *, count: int
) -> list[Candidate]:
    """`count` candidates for `namespace`, on this test's short Lease, logging executions."""
    return candidates(
        namespace=namespace,
        workdir=workdir,
        kubeconfig=e2e_cluster.kubeconfig,
        lease_seconds=LEASE,
        renew_seconds=RENEW,
        retry_seconds=RETRY,
        execution_log=workdir / "executions.log",
        count=count,
    )


@pytest.fixture
def pair(e2e_cluster: Cluster, k8s_namespace: str, workdir: Path) -> Iterator[list[Candidate]]:
    """Two candidates for this namespace; the suite's operator (all namespaces) is paused."""
    e2e_cluster.operator.stop()
    group = this_namespace(e2e_cluster, k8s_namespace, workdir, count=3)
    try:
        yield group
    finally:
        for candidate in group:
            candidate.stop()
        e2e_cluster.operator.start()
        print(f"\nfailover logs in {workdir}")


def statuses(namespace: str) -> dict[str, dict[str, Any]]:
    listing = json.loads(kubectl("get", "wfr", "-n", namespace, "-o", "json"))
    return {item["metadata"]["name"]: item.get("status") or {} for item in listing["items"]}


def lease(namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        kubectl("get", "lease", "stageflow-operator", "-n", namespace, "-o", "json")
    )
    return found


def steps(tag: str) -> dict[str, Any]:
    def step(label: str, seconds: float) -> dict[str, Any]:
        params = {"run": tag, "label": label, "seconds": seconds}
        return {"name": label, "task": "logged_step", "params": params}

    return {
        "workflow": [
            {"type": "sequential", "tasks": [step("first", 0), step("slow", 1.5)]},
            {"type": "parallel", "tasks": [step("left", 0.2), step("right", 0.2)]},
        ]
    }


def test_the_standby_takes_over_a_killed_leader_and_then_a_graceful_stop(
    e2e_cluster: Cluster, k8s_namespace: str, pair: list[Candidate], workdir: Path
) -> None:
    first, second, third = pair
    first.start()
    assert wait_for_leader([first]) is first
    second.start()
    api = e2e_cluster.start_api(k8s_namespace, task_modules="tests.fixtures.logged_tasks")
    tags = [f"r{number}" for number in range(4)]
    run_ids = {submit(api, steps(tag)): tag for tag in tags}

    # Kill the leader while some run has a task under way.
    deadline = time.monotonic() + 30
    while not any(
        task.get("phase") == "Running"
        for status in statuses(k8s_namespace).values()
        for task in (status.get("tasks") or {}).values()
    ):
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.02)
    killed_pid = first.pid
    first.signal(signal.SIGKILL)
    first.wait()
    killed_at = time.time()
    recorded = statuses(k8s_namespace)  # nothing writes status until the standby leads
    succeeded = {
        (run_ids[run], task_id)
        for run, status in recorded.items()
        for task_id, task in (status.get("tasks") or {}).items()
        if task.get("phase") == "Succeeded"
    }
    assert not second.leading

    assert wait_for_leader([second]) is second
    for run_id in run_ids:
        run = wait_for_run(api, run_id, timeout=60)
        assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"])

    log = executions(workdir / "executions.log")
    starts: dict[tuple[str, str], list[int]] = {}
    for execution in log:
        if execution.event == "start":
            starts.setdefault((execution.run, execution.label), []).append(execution.pid)
    for key in succeeded:
        assert len(starts[key]) == 1, f"{key} had succeeded (recorded) and ran again"
    assert set(starts) == {
        (tag, label) for tag in tags for label in ("first", "slow", "left", "right")
    }
    standby_pid = second.pid
    for execution in log:
        # Nothing ran on both at once: the standby started nothing before the leader died,
        # and the killed leader did nothing after.
        if execution.pid == standby_pid:
            assert execution.at > killed_at
        else:
            assert execution.pid == killed_pid
            assert execution.at <= killed_at
    assert any(len(pids) == 2 for pids in starts.values()) or succeeded, "the kill hit no run"

    # A graceful stop hands over at once: the leader releases the Lease on SIGTERM.
    third.start()
    wait_until_standing_by(third)
    before = lease(k8s_namespace)["spec"]
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    assert "released lease" in second.log()
    # Released (no holder), or already taken by the standby at its next try: not expired.
    assert lease(k8s_namespace)["spec"].get("holderIdentity") in (None, "op-2")
    assert wait_for_leader([third]) is third
    after = lease(k8s_namespace)["spec"]
    assert after["holderIdentity"] == "op-2"
    assert after["leaseTransitions"] == before["leaseTransitions"] + 1


def test_two_operators_started_with_no_settings_never_run_a_task_twice(
    e2e_cluster: Cluster, k8s_namespace: str, workdir: Path
) -> None:
    """`stageflow operator` twice, as a user scaling up by hand would: no election setting
    at all (only the namespace, to keep the test to its own, and a name each for its log).
    Election is the default, so one leads, the other stands by, and every task runs exactly
    once, on the leader."""
    e2e_cluster.operator.stop()
    group = this_namespace(e2e_cluster, k8s_namespace, workdir, count=2)
    for candidate in group:
        for name in list(candidate.env):
            if name.startswith(("STAGEFLOW_LEADER", "STAGEFLOW_LEASE")):
                del candidate.env[name]
    try:
        for candidate in group:
            candidate.start()
        leader = wait_for_leader(group)
        api = e2e_cluster.start_api(k8s_namespace, task_modules="tests.fixtures.logged_tasks")
        tags = [f"r{number}" for number in range(6)]
        run_ids = [submit(api, steps(tag)) for tag in tags]
        for run_id in run_ids:
            run = wait_for_run(api, run_id, timeout=60)
            assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"])
        starts: dict[tuple[str, str], list[int]] = {}
        for execution in executions(workdir / "executions.log"):
            if execution.event == "start":
                starts.setdefault((execution.run, execution.label), []).append(execution.pid)
        expected = {(tag, label) for tag in tags for label in ("first", "slow", "left", "right")}
        assert set(starts) == expected
        assert all(pids == [leader.pid] for pids in starts.values()), starts
        (standby,) = [candidate for candidate in group if candidate is not leader]
        assert standby.process is not None
        assert standby.process.poll() is None
        assert not standby.leading
        assert "standing by" in standby.log()
        assert lease(k8s_namespace)["spec"]["holderIdentity"] == leader.name
    finally:
        for candidate in group:
            candidate.stop()
        e2e_cluster.operator.start()


def wait_until_standing_by(candidate: Candidate) -> None:
    deadline = time.monotonic() + 30
    while "standing by" not in candidate.log():
        assert time.monotonic() < deadline, candidate.log()[-2000:]
        time.sleep(0.05)
