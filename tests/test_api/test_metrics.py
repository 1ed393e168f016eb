"""The API's /metrics: requests by route template and code, latency, runs submitted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from tests.support.api import submit, wait_for_run
from tests.support.metrics import Samples, delta, label_values, parse
from tests.support.workflows import SEED

REQUESTS = "stageflow_api_requests_total"
LATENCY = "stageflow_api_request_duration_seconds_count"


@pytest.fixture
def local(tasks: TaskRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(status_flush_seconds=0.01), tasks=tasks)) as client:
        yield client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def test_requests_are_counted_by_route_template_and_code(local: TestClient) -> None:
    before = scrape(local)
    run_ids = [submit(local, SEED) for _ in range(2)]
    for run_id in run_ids:
        wait_for_run(local, run_id)
    polls = delta(
        before, scrape(local), REQUESTS, method="GET", route="/workflow/{run_id}", code="200"
    )
    assert local.get("/workflow/0d7d3c1e-0000-4000-8000-000000000000").status_code == 404
    assert (
        local.post(
            "/workflow", json={"workflow": [{"type": "parallel", "tasks": ["task_x"]}]}
        ).status_code
        == 400
    )
    assert local.post("/workflow", json={"nothing": 1}).status_code == 422
    assert local.get("/no/such/path").status_code == 404
    after = scrape(local)

    assert delta(before, after, "stageflow_api_runs_submitted_total") == 2
    assert delta(before, after, REQUESTS, method="POST", route="/workflow", code="202") == 2
    assert delta(before, after, REQUESTS, method="POST", route="/workflow", code="400") == 1
    assert delta(before, after, REQUESTS, method="POST", route="/workflow", code="422") == 1
    get_run = {"method": "GET", "route": "/workflow/{run_id}"}
    assert delta(before, after, REQUESTS, **get_run, code="200") == polls >= 2
    assert delta(before, after, REQUESTS, **get_run, code="404") == 1
    assert delta(before, after, REQUESTS, method="GET", route="unmatched", code="404") == 1
    assert delta(before, after, LATENCY, method="POST", route="/workflow") == 4
    assert not set(run_ids) & label_values(after)
    assert "/no/such/path" not in label_values(after)


def test_metrics_is_not_in_the_openapi_schema(local: TestClient) -> None:
    assert "/metrics" not in local.get("/openapi.json").json()["paths"]
