"""Acting on runs under operator SIGKILLs, on a real control plane: a retry being carried
out, a retry asked for while the operator is down, finally tasks running, runs waiting
for approval, and atMostOnce finally tasks.

What must hold afterwards (docs/acting.md): a task that had succeeded before the retry
never runs again (its own execution log has one start); each retry is carried out once
(`status.retries` holds one entry); an atMostOnce finally task's body runs at most once
per run of the graph (so at most twice in all, here: before and after the retry); the
approval recorded is the one sent, and what it gates runs; an atMostOnce task in the main
graph, under two more kills, runs its body at most `retries + 1` times in all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.chaos import Chaos, workflow_runs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

RUNS = 8
GATES = 4


def until(check: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f}s"
        time.sleep(0.1)


def step(key: str, name: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "task": "chaos_step", "params": {"key": f"{key}.{name}", **params}}


def failing_once(key: str) -> dict[str, Any]:
    """`a` succeeds, `b` fails its first attempt (no retries: the run fails); the finally
    task `f` (1.5 s, atMostOnce) runs after each run of the graph."""
    return {
        "name": key,
        "workflow": [
            {
                "type": "sequential",
                "tasks": [step(key, "a", seconds=0.2), step(key, "b", seconds=0.2, fail_times=1)],
            }
        ],
        "finally": [{**step(key, "f", seconds=1.5), "delivery": "atMostOnce"}],
    }


def at_most_once(key: str, *, retries: int) -> dict[str, Any]:
    task = {**step(key, "m", seconds=1.0), "delivery": "atMostOnce", "retries": retries}
    return {"name": key, "dag": [{**task, "retryBackoffSeconds": 0.1}]}


def gated(key: str) -> dict[str, Any]:
    return {
        "name": key,
        "dag": [
            {"name": "gate", "approval": {}},
            {**step(key, "after", seconds=0.2), "dependsOn": ["gate"]},
        ],
    }


def post(api: httpx.Client, path: str, body: Any = None) -> httpx.Response:
    """POST until the API answers something other than 503 (the apiserver away is fair)."""
    deadline = time.monotonic() + 60
    while True:
        response = api.post(path, json=body)
        if response.status_code != 503:
            return response
        assert time.monotonic() < deadline, f"{path}: 503 for a minute"
        time.sleep(0.2)


def phase_of(chaos: Chaos, run_id: str) -> str | None:
    status = workflow_runs(chaos.plane).get(run_id, {}).get("status") or {}
    phase: str | None = status.get("phase")
    return phase


def settled(obj: dict[str, Any]) -> bool:
    """Finished, and any retry asked for carried out (the raw object still says Failed
    until the operator has reset it)."""
    status = obj.get("status") or {}
    request = obj["spec"].get("retryRequest")
    carried_out = request is None or request["id"] in {
        entry["id"] for entry in status.get("retries") or []
    }
    return status.get("phase") in ("Succeeded", "Failed", "Cancelled") and carried_out


def starts(chaos: Chaos, key: str) -> int:
    return sum(1 for what, _ in chaos.attempts_logged(key) if what == "start")


def test_retries_finally_tasks_and_approvals_survive_operator_kills(chaos: Chaos) -> None:
    api = chaos.apis[0].client
    runs = {
        f"r{i}": post(api, "/workflow", failing_once(f"r{i}")).json()["run_id"] for i in range(RUNS)
    }
    gates = {f"g{i}": post(api, "/workflow", gated(f"g{i}")).json()["run_id"] for i in range(GATES)}
    until(
        lambda: all(phase_of(chaos, run_id) == "Failed" for run_id in runs.values()),
        within=120,
        what="every run failed at b (its finally task run)",
    )

    def gates_waiting() -> bool:
        objects = workflow_runs(chaos.plane)
        return all(
            (objects[run_id].get("status") or {}).get("tasks", {}).get("gate", {}).get("phase")
            == "Waiting"
            for run_id in gates.values()
        )

    until(gates_waiting, within=60, what="every gate waiting")

    # 1. Two retries asked for while the operator is down; then the rest, and the operator
    #    SIGKILLed while they are carried out.
    chaos.operator.kill()
    for key in ("r0", "r1"):
        assert post(api, f"/workflow/{runs[key]}/retry").status_code == 202
    chaos.operator.start()
    for key in list(runs)[2:]:
        assert post(api, f"/workflow/{runs[key]}/retry").status_code == 202
    chaos.operator.kill()
    chaos.operator.start()

    # 2. Two gates approved with the operator up, then it is killed; two more approved
    #    while it is down (the API writes them to the WorkflowRuns; it hands them on).
    sent = {key: f"ok from {key}" for key in gates}
    for key in ("g0", "g1"):
        assert (
            post(
                api, f"/workflow/{gates[key]}/tasks/gate/approve", {"comment": sent[key]}
            ).status_code
            == 202
        )
    chaos.operator.kill()
    for key in ("g2", "g3"):
        assert (
            post(
                api, f"/workflow/{gates[key]}/tasks/gate/approve", {"comment": sent[key]}
            ).status_code
            == 202
        )
    chaos.operator.start()

    # 3. Killed once more while the retried runs' finally tasks run.
    until(
        lambda: any(starts(chaos, f"{key}.f") >= 2 for key in runs),
        within=120,
        what="a finally task running after its retry",
    )
    chaos.operator.kill()
    chaos.operator.start()

    def all_settled() -> bool:
        objects = workflow_runs(chaos.plane)
        return all(settled(objects[run_id]) for run_id in [*runs.values(), *gates.values()])

    until(all_settled, within=180, what="every run finished, its retry carried out")
    objects = workflow_runs(chaos.plane)
    problems: list[str] = []
    for key, run_id in runs.items():
        status = objects[run_id]["status"]
        if starts(chaos, f"{key}.a") != 1:
            problems.append(
                f"{key}.a ran {starts(chaos, f'{key}.a')} times (succeeded before the retry)"
            )
        if len(status.get("retries") or []) != 1:
            problems.append(f"{key}: {len(status.get('retries') or [])} retries recorded, 1 sent")
        finally_runs = starts(chaos, f"{key}.f")
        if finally_runs > 2:
            problems.append(
                f"{key}.f (atMostOnce) ran {finally_runs} times for two runs of the graph"
            )
        if status["phase"] == "Succeeded" and finally_runs != 2:
            problems.append(f"{key}: Succeeded, but f ran {finally_runs} times")
        if status["phase"] == "Failed" and "interrupted" not in (
            status["tasks"]["f"].get("message") or ""
        ):
            problems.append(f"{key}: Failed: {status.get('message')}")
    for key, run_id in gates.items():
        status = objects[run_id]["status"]
        decision = status["tasks"]["gate"].get("decision") or {}
        if (decision.get("approved"), decision.get("comment")) != (True, sent[key]):
            problems.append(f"{key}: recorded {decision}, sent {sent[key]!r}")
        if status["phase"] != "Succeeded" or starts(chaos, f"{key}.after") < 1:
            problems.append(f"{key}: {status['phase']}, after ran {starts(chaos, f'{key}.after')}")
    assert problems == []

    # 4. atMostOnce tasks in the main graph under two more kills: a body runs at most
    #    retries + 1 times in all (retries 0: at most once), whatever the kills cut short.
    once = {
        f"m{i}": post(api, "/workflow", at_most_once(f"m{i}", retries=i % 2)).json()["run_id"]
        for i in range(8)
    }
    for _ in range(2):
        until(
            lambda: sum(starts(chaos, f"{key}.m") for key in once) >= 4,
            within=60,
            what="atMostOnce tasks under way",
        )
        chaos.operator.kill()
        chaos.operator.start()

    def once_settled() -> bool:
        objects = workflow_runs(chaos.plane)
        return all(settled(objects[run_id]) for run_id in once.values())

    until(once_settled, within=120, what="every atMostOnce run finished")
    over = {
        key: starts(chaos, f"{key}.m")
        for key in once
        if starts(chaos, f"{key}.m") > int(key[1:]) % 2 + 1
    }
    assert over == {}
    counts = {key: starts(chaos, f"{key}.m") for key in once}
    print(f"atMostOnce bodies run (retries = index % 2): {counts}")
    # How many finally tasks the kill in step 3 interrupted (0 is possible if it fell
    # between them): printed for the record, not asserted.
    interrupted = sum(
        1 for run_id in runs.values() if objects[run_id]["status"]["phase"] == "Failed"
    )
    print(f"finally tasks interrupted by the kill and not run again: {interrupted} of {RUNS}")
