"""Two `stageflow api` processes sharing one Redis behave as one service (issue 2, item 4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import read_events, submit, wait_for_run, wait_for_task
from tests.support.live_api import start_api, stop_api
from tests.support.workflows import SEED, sleeps


@pytest.fixture
def replicas(redis_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    started = [start_api(redis_url), start_api(redis_url)]
    try:
        yield started[0][1], started[1][1]
    finally:
        for process, client in started:
            stop_api(process, client)


def test_a_run_submitted_to_one_is_read_listed_and_streamed_by_the_other(
    replicas: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = replicas
    run_id = submit(first, sleeps(3, 0.2, "sequential"))
    with second.stream("GET", f"/workflow/{run_id}/events") as response:
        assert response.status_code == 200
        events = read_events(response.iter_lines())
    assert events[0][0] == "snapshot"
    assert events[-1][1]["phase"] == "Succeeded"
    assert (
        second.get(f"/workflow/{run_id}/status").json()
        == first.get(f"/workflow/{run_id}/status").json()
        == {"s0": "Succeeded", "s1": "Succeeded", "s2": "Succeeded"}
    )
    assert [item["run_id"] for item in second.get("/workflows").json()["items"]] == [run_id]
    assert second.get(f"/workflow/{run_id}").json() == first.get(f"/workflow/{run_id}").json()


def test_cancel_through_the_other_replica_stops_the_owner(
    replicas: tuple[httpx.Client, httpx.Client],
) -> None:
    owner, other = replicas
    run_id = submit(owner, sleeps(1, 30))
    wait_for_task(other, run_id, "s0", "Running")
    assert other.post(f"/workflow/{run_id}/cancel").status_code == 202
    run = wait_for_run(owner, run_id)
    assert run["status"]["phase"] == "Cancelled"
    assert run["status"]["tasks"]["s0"]["phase"] == "Cancelled"
    assert other.get(f"/workflow/{run_id}/status").json() == {"s0": "Cancelled"}


def test_delete_through_the_other_replica_stops_the_owner_for_good(
    replicas: tuple[httpx.Client, httpx.Client],
) -> None:
    owner, other = replicas
    run_id = submit(owner, {"workflow": [*sleeps(1, 0.3)["workflow"], *SEED["workflow"]]})
    wait_for_task(other, run_id, "s0", "Running")
    assert other.delete(f"/workflow/{run_id}").status_code == 204
    time.sleep(0.6)  # past the point where the owner's run would have finished and written
    assert owner.get(f"/workflow/{run_id}").status_code == 404
    assert other.get(f"/workflow/{run_id}/status").status_code == 404
