"""Events and metrics on a real kube-apiserver: what `kubectl describe wfr` and /metrics show."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.api import submit, wait_for_run
from tests.support.cluster import Cluster, kubectl
from tests.support.metrics import delta, parse
from tests.support.workflows import failing, sequential

pytestmark = pytest.mark.e2e


def events_of(namespace: str, run_id: str) -> list[dict[str, Any]]:
    listing = json.loads(
        kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            f"involvedObject.name={run_id}",
            "-o",
            "json",
        )
    )
    items: list[dict[str, Any]] = listing["items"]
    return sorted(items, key=lambda event: (event["firstTimestamp"], event["metadata"]["name"]))


def test_a_failing_run_has_its_events_and_the_api_counts_its_requests(
    e2e_cluster: Cluster, k8s_namespace: str
) -> None:
    api = e2e_cluster.start_api(k8s_namespace)
    before = parse(api.get("/metrics").text)
    body = sequential(failing("boom", "disk full", retries=1, backoff=0.2))
    run_id = submit(api, body)
    assert wait_for_run(api, run_id, timeout=30)["status"]["phase"] == "Failed"

    deadline = time.monotonic() + 30
    while "Failed" not in {event["reason"] for event in events_of(k8s_namespace, run_id)}:
        assert time.monotonic() < deadline, events_of(k8s_namespace, run_id)
        time.sleep(0.1)
    events = events_of(k8s_namespace, run_id)
    assert {(e["reason"], e["type"]) for e in events} == {
        ("Started", "Normal"),
        ("RetryScheduled", "Normal"),
        ("TaskFailed", "Warning"),
        ("Failed", "Warning"),
    }
    failed = next(e for e in events if e["reason"] == "TaskFailed")
    assert "disk full" in failed["message"]
    assert failed["involvedObject"]["kind"] == "WorkflowRun"
    described = kubectl("describe", "wfr", run_id, "-n", k8s_namespace)
    assert "TaskFailed" in described
    assert "disk full" in described

    after = parse(api.get("/metrics").text)
    assert delta(before, after, "stageflow_api_runs_submitted_total") == 1
    # The create is a direct call (kube/direct.py), so its code is the apiserver's own.
    assert (
        delta(before, after, "stageflow_apiserver_requests_total", verb="create", code="201") == 1
    )
    assert (
        delta(
            before,
            after,
            "stageflow_api_requests_total",
            method="POST",
            route="/workflow",
            code="202",
        )
        == 1
    )
