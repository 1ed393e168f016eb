"""Concurrency keys and priority through the HTTP API, on every backend: a run over its
key's limit waits Queued (with its key and place), at no instant do more run than the limit,
priority orders admission, and bad rules are 4xx naming them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from stageflow.models.status import parse_timestamp
from tests.support.api import submit, wait_for_run
from tests.support.polling import wait_until


def limited(seconds: float, *, env: str = "prod", max_: int = 2, **options: Any) -> dict[str, Any]:
    return {
        "dag": [{"name": "work", "task": "sleep", "params": {"seconds": seconds}}],
        "params": {"env": env},
        "concurrency": [{"key": '"deploy-" + params.env', "max": max_}],
        **options,
    }


def intervals(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    found = []
    for run in runs:
        task = run["status"]["tasks"]["work"]
        start, end = parse_timestamp(task["startedAt"]), parse_timestamp(task["finishedAt"])
        assert start is not None
        assert end is not None
        found.append((start.timestamp(), end.timestamp()))
    return found


def peak(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = most = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        level += step
        most = max(most, level)
    return most


def test_runs_over_the_limit_wait_queued_and_never_exceed_it(client: TestClient) -> None:
    run_ids = [submit(client, limited(1.5)) for _ in range(5)]
    other = submit(client, limited(0.1, env="staging"))  # another key: not held up

    def queued() -> list[dict[str, Any]]:
        runs = [client.get(f"/workflow/{run_id}").json() for run_id in run_ids]
        return [run for run in runs if run["status"]["phase"] == "Queued"]

    wait_until(lambda: len(queued()) >= 2, within=30)
    waiting = queued()[0]["status"]["queue"]
    assert waiting["keys"] == ["deploy-prod"]
    assert waiting["position"] >= 1
    listed = client.get("/workflows", params={"phase": "Queued"}).json()["items"]
    assert all(item["phase"] == "Queued" for item in listed)
    assert any(item["run_id"] in run_ids for item in listed)
    assert wait_for_run(client, other)["status"]["phase"] == "Succeeded"
    runs = [wait_for_run(client, run_id, timeout=60) for run_id in run_ids]
    assert [run["status"]["phase"] for run in runs] == ["Succeeded"] * 5
    assert all("queue" not in run["status"] for run in runs)
    assert peak(intervals(runs)) == 2


def test_priority_orders_admission(client: TestClient) -> None:
    blocker = submit(client, limited(4.0, max_=1))
    wait_until(lambda: client.get(f"/workflow/{blocker}").json()["status"]["phase"] == "Running")
    low = submit(client, limited(0.1, max_=1))
    high = submit(client, limited(0.1, max_=1, priority=10))
    wait_until(lambda: client.get(f"/workflow/{low}").json()["status"]["phase"] == "Queued")
    wait_until(
        lambda: (
            (client.get(f"/workflow/{low}").json()["status"].get("queue") or {}).get("position")
            == 2
        ),
        within=30,
    )
    runs = [wait_for_run(client, run_id, timeout=60) for run_id in (blocker, high, low)]
    (_, first), (high_start, _), (low_start, _) = intervals(runs)
    assert first <= high_start + 0.05
    assert high_start < low_start  # submitted later, let in first


def test_cancelling_a_queued_run(client: TestClient) -> None:
    blocker = submit(client, limited(1.0, max_=1))
    waiting = submit(client, limited(0.1, max_=1))
    wait_until(lambda: client.get(f"/workflow/{waiting}").json()["status"]["phase"] == "Queued")
    assert client.post(f"/workflow/{waiting}/cancel").status_code == 202
    cancelled = wait_for_run(client, waiting)
    assert cancelled["status"]["phase"] == "Cancelled"
    assert cancelled["status"]["tasks"]["work"]["phase"] == "Cancelled"
    assert wait_for_run(client, blocker)["status"]["phase"] == "Succeeded"
    after = submit(client, limited(0.1, max_=1))  # nothing was left held
    assert wait_for_run(client, after)["status"]["phase"] == "Succeeded"


def test_cancel_newest(client: TestClient) -> None:
    rule = [{"key": "params.env", "max": 1, "strategy": "cancelNewest"}]
    blocker = submit(client, {**limited(1.0), "concurrency": rule})
    wait_until(lambda: client.get(f"/workflow/{blocker}").json()["status"]["phase"] == "Running")
    newest = wait_for_run(client, submit(client, {**limited(0.1), "concurrency": rule}))
    assert newest["status"]["phase"] == "Cancelled"
    assert "cancelNewest" in newest["status"]["message"]
    assert wait_for_run(client, blocker)["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("rule", "code", "detail"),
    [
        ({"key": "params.env +", "max": 1}, 400, "not a CEL expression"),
        ({"key": "params.nope", "max": 1}, 400, "no such member"),
        ({"key": "team", "max": 1}, 400, "reads 'team'; it may read labels, params"),
        ({"key": "1 + 1", "max": 1}, 400, "not a string"),
        ({"key": "params.env", "max": 0}, 422, None),
        ({"key": "params.env", "max": 1, "strategy": "lottery"}, 422, None),
    ],
)
def test_bad_rules_are_refused(
    client: TestClient, rule: dict[str, Any], code: int, detail: str | None
) -> None:
    answer = client.post("/workflow", json={**limited(0.1), "concurrency": [rule]})
    assert answer.status_code == code, answer.text
    if detail is not None:
        assert detail in answer.json()["detail"]
        assert answer.json()["detail"].startswith("concurrency[0].key")
    task_rule = {"key": "params.x", "max": 1, "strategy": "cancelNewest"}
    bad_task = {"dag": [{"name": "t", "task": "echo", "concurrency": [task_rule]}]}
    answer = client.post("/workflow", json=bad_task)
    assert answer.status_code == 400
    assert "a task waits in line (queue) only" in answer.json()["detail"]
    assert client.get("/workflows").json()["items"] == []
