"""Templates and schedules on a real apiserver with the operator: what a user applies with
kubectl, runs by reference over HTTP, and sees with `kubectl get`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from tests.support.api import submit, wait_for_run
from tests.support.cluster import Cluster, kubectl
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def _template(text: str) -> dict[str, Any]:
    return {
        "apiVersion": "stageflow.dev/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "nightly"},
        "spec": {
            "params": {"who": {"description": "whom to greet"}},
            "dag": [{"name": "say", "task": "echo", "params": {"text": text}}],
        },
    }


def _apply(namespace: str, obj: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(obj))


def _get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json"))
    return found


@pytest.fixture
def api(e2e_cluster: Cluster, k8s_namespace: str) -> httpx.Client:
    return e2e_cluster.start_api(k8s_namespace)


def test_a_template_applied_with_kubectl_is_revised_and_old_runs_keep_theirs(
    api: httpx.Client, k8s_namespace: str
) -> None:
    _apply(k8s_namespace, _template("hello {{ params.who }}"))
    # the operator keeps the revision kubectl made, and writes it in the status
    wait_until(
        lambda: (_get(k8s_namespace, "wft", "nightly").get("status") or {}).get("revision") == 1
    )
    first = submit(api, {"templateRef": {"name": "nightly"}, "params": {"who": "ann"}})
    done = wait_for_run(api, first, timeout=30)
    assert done["status"]["tasks"]["say"]["outputs"] == {"text": "hello ann"}
    assert done["origin"]["template_revision"] == 1

    _apply(k8s_namespace, _template("goodbye {{ params.who }}"))
    wait_until(
        lambda: (_get(k8s_namespace, "wft", "nightly").get("status") or {}).get("revision") == 2
    )
    assert api.get("/templates/nightly").json()["revisions"] == [1, 2]
    old = api.get("/templates/nightly/revisions/1").json()
    assert old["spec"]["dag"][0]["params"]["text"] == "hello {{ params.who }}"
    second = submit(api, {"templateRef": {"name": "nightly"}, "params": {"who": "bo"}})
    assert wait_for_run(api, second, timeout=30)["status"]["tasks"]["say"]["outputs"] == {
        "text": "goodbye bo"
    }
    # the first run is as it was: its spec, its revision, and its labels on the object
    kept = api.get(f"/workflow/{first}").json()
    assert kept["spec"]["dag"][0]["params"]["text"] == "hello {{ params.who }}"
    assert kept["origin"]["template_revision"] == 1
    labels = _get(k8s_namespace, "wfr", first)["metadata"]["labels"]
    assert labels["stageflow.dev/template"] == "nightly"
    assert labels["stageflow.dev/template-revision"] == "1"
    table = kubectl("get", "workflowtemplates", "-n", k8s_namespace)
    header, row = table.splitlines()[:2]
    assert header.split()[:2] == ["NAME", "REVISION"]
    assert row.split()[:2] == ["nightly", "2"]
    # the revisions are ControllerRevisions the template owns
    revisions = kubectl("get", "controllerrevisions", "-n", k8s_namespace, "-o", "name")
    assert sorted(revisions.split()) == [
        "controllerrevision.apps/nightly-1",
        "controllerrevision.apps/nightly-2",
    ]


def test_a_schedule_applied_with_kubectl_fires_each_slot_once(
    api: httpx.Client, k8s_namespace: str
) -> None:
    schedule = {
        "apiVersion": "stageflow.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "ticker"},
        "spec": {
            "schedule": ["@every 2s"],
            "successfulRunsHistoryLimit": 50,
            "workflowSpec": {
                "dag": [
                    {"name": "at", "task": "echo", "params": {"t": "{{ params.scheduledTime }}"}}
                ]
            },
        },
    }
    _apply(k8s_namespace, schedule)
    wait_until(lambda: api.get("/schedules/ticker").json()["status"]["fired"] >= 3, within=60)
    assert api.post("/schedules/ticker/pause").json()["spec"]["suspend"] is True
    status = api.get("/schedules/ticker").json()["status"]
    listed = json.loads(
        kubectl(
            "get", "wfr", "-n", k8s_namespace, "-l", "stageflow.dev/schedule=ticker", "-o", "json"
        )
    )["items"]
    slots = [
        json.loads(item["metadata"]["annotations"]["stageflow.dev/origin"])["scheduled_time"]
        for item in listed
    ]
    assert len(slots) == len(set(slots)) >= 3  # one run per slot
    assert len(slots) >= status["fired"] - 1  # the pause may have raced one firing
    table = kubectl("get", "schedules", "-n", k8s_namespace)
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "SCHEDULE", "TIMEZONE", "LAST"]
    assert row.split()[0] == "ticker"
    assert "true" in row.split()


def test_bad_schedules_are_refused_and_nothing_is_created(
    api: httpx.Client, k8s_namespace: str
) -> None:
    bad = {"schedule": "61 * * * *", "workflowSpec": {"dag": [{"name": "a", "task": "task_a"}]}}
    answer = api.put("/schedules/bad", json=bad)
    assert answer.status_code == 400
    assert "schedule[0] '61 * * * *'" in answer.json()["detail"]
    assert kubectl("get", "schedules", "-n", k8s_namespace, "-o", "name") == ""
