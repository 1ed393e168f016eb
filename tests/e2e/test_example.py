"""The data-quality example on the real control plane, with the operator restarted mid-loop."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.api import submit, wait_for_run
from tests.support.cluster import Cluster, workflow_run
from tests.support.paths import ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e
PIPELINE = json.loads((ROOT / "examples" / "data_quality" / "pipeline.json").read_text())


@pytest.fixture
def api(e2e_cluster: Cluster, k8s_namespace: str) -> httpx.Client:
    return e2e_cluster.start_api(k8s_namespace)


def test_the_pipeline_survives_an_operator_restart_mid_loop(
    e2e_cluster: Cluster, api: httpx.Client, k8s_namespace: str
) -> None:
    # Each iteration takes 1.5 s, three times the status flush interval, so an attempt's
    # start is in the WorkflowRun well before it ends.
    body = {**PIPELINE, "params": {**PIPELINE["params"], "pause_seconds": 1.5}}
    run_id = submit(api, body)

    def looping() -> bool:
        """Past the first iteration, with the next attempt's start recorded: the kill
        interrupts an attempt the WorkflowRun knows of (one started but not yet recorded
        would be re-run uncounted, the at-least-once window the chaos tier measures)."""
        clean = (
            workflow_run(k8s_namespace, run_id).get("status", {}).get("tasks", {}).get("clean", {})
        )
        iterations = clean.get("iterations") or 0
        started = (clean.get("attempts") or 0) > iterations
        return iterations >= 1 and clean.get("phase") == "Running" and started

    wait_until(looping, within=60)
    e2e_cluster.operator.kill()
    before = workflow_run(k8s_namespace, run_id)["status"]["tasks"]
    done_before = {name for name, task in before.items() if task["phase"] == "Succeeded"}
    assert {"profile", "check", "derive_rules"} <= done_before

    e2e_cluster.operator.start()
    run = wait_for_run(api, run_id, timeout=120)
    assert run["status"]["phase"] == "Succeeded"
    tasks = run["status"]["tasks"]
    for name in done_before:
        assert tasks[name]["attempts"] == before[name]["attempts"], f"{name} ran again"
        assert tasks[name]["outputs"] == before[name]["outputs"]
    clean = tasks["clean"]
    assert clean["iterations"] == 4
    assert clean["outputs"]["remaining"] == 2
    assert clean["attempts"] >= 5  # four iterations, and the one the kill interrupted
    assert tasks["report"]["outputs"]["anomalies_before"] == 14
    assert tasks["report"]["outputs"]["anomalies_after"] == 2
    assert [tasks[f"check[{i}]"]["phase"] for i in range(6)] == ["Succeeded"] * 6
    logs = api.get(f"/workflow/{run_id}/tasks/clean/logs").text
    assert "iteration 3: applied drop_quantity_outliers; 2 left" in logs
