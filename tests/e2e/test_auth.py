"""The auth matrix of issue 11 on the real apiserver: RBAC is the whole policy.

Two service accounts: `viewer` (get/list/watch workflowruns) and `submitter`
(create/get/list/watch/patch/delete). The API runs in `kubernetes` mode and asks the
apiserver (TokenReview, SubjectAccessReview) about each request. Tokens come from
service-account-token Secrets, which the token controller fills in on v1.20 as on
current clusters (where `kubectl create token` is the other way).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from stageflow.kube import GROUP, VERSION
from tests.support.api import wait_for_run
from tests.support.cluster import Cluster, kubectl
from tests.support.polling import wait_until
from tests.support.workflows import SEED

pytestmark = pytest.mark.e2e

VERBS = {
    "viewer": ["get", "list", "watch"],
    "submitter": ["create", "get", "list", "watch", "patch", "delete"],
}


def service_account_token(namespace: str, account: str) -> str:
    """A service account bound to a Role with VERBS[account] on workflowruns; its token."""
    kubectl("create", "serviceaccount", account, "-n", namespace)
    kubectl(
        "create", "role", account, "-n", namespace,
        f"--verb={','.join(VERBS[account])}", f"--resource=workflowruns.{GROUP}",
    )  # fmt: skip
    kubectl(
        "create", "rolebinding", account, "-n", namespace, f"--role={account}",
        f"--serviceaccount={namespace}:{account}",
    )  # fmt: skip
    return token_of(namespace, account)


def token_of(namespace: str, account: str) -> str:
    """The token of service account `account`, from a service-account-token Secret."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": f"{account}-token",
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": account},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))

    def token() -> str | None:
        found = json.loads(
            kubectl("get", "secret", f"{account}-token", "-n", namespace, "-o", "json")
        )
        data = (found.get("data") or {}).get("token")
        return base64.b64decode(data).decode() if data else None

    wait_until(lambda: token() is not None, within=30)
    value = token()
    assert value is not None
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(e2e_cluster: Cluster, k8s_namespace: str) -> tuple[httpx.Client, dict[str, str]]:
    tokens = {account: service_account_token(k8s_namespace, account) for account in VERBS}
    api = e2e_cluster.start_api(
        k8s_namespace, STAGEFLOW_AUTH_MODE="kubernetes", STAGEFLOW_AUTH_CACHE_SECONDS="1"
    )
    return api, tokens


def test_the_auth_matrix(secured: tuple[httpx.Client, dict[str, str]], k8s_namespace: str) -> None:
    api, tokens = secured
    viewer, submitter = bearer(tokens["viewer"]), bearer(tokens["submitter"])

    # no token, a forged one: 401 with the challenge
    for headers in ({}, bearer("forged.token.value"), bearer(tokens["viewer"] + "x")):
        response = api.get("/workflows", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.post("/workflow", json=SEED).status_code == 401
    assert api.get("/healthz").status_code == 200
    assert api.get("/openapi.json").status_code == 200

    # the viewer may not submit
    refused = api.post("/workflow", json=SEED, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"Forbidden: system:serviceaccount:{k8s_namespace}:viewer may not create "
        f"workflowruns.stageflow.dev in namespace {k8s_namespace}"
    )

    # the submitter may, and is recorded as the submitter
    submitted = api.post("/workflow", json=SEED, headers=submitter)
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["run_id"]
    annotations = json.loads(
        kubectl("get", "workflowrun", run_id, "-n", k8s_namespace, "-o", "json")
    )["metadata"]["annotations"]
    assert annotations["stageflow.dev/submitted-by"] == (
        f"system:serviceaccount:{k8s_namespace}:submitter"
    )

    # the viewer reads: the run, its status, the list
    with httpx.Client(base_url=str(api.base_url), headers=viewer, timeout=30) as as_viewer:
        run = wait_for_run(as_viewer, run_id)
        assert run["status"]["phase"] == "Succeeded"
        assert run["submitted_by"] == f"system:serviceaccount:{k8s_namespace}:submitter"
        assert as_viewer.get(f"/workflow/{run_id}/status").status_code == 200
        listed = as_viewer.get("/workflows")
        assert listed.status_code == 200
        assert [item["run_id"] for item in listed.json()["items"]] == [run_id]

    # the viewer may not delete; the submitter may
    forbidden = api.delete(f"/workflow/{run_id}", headers=viewer)
    assert forbidden.status_code == 403
    assert "may not delete workflowruns.stageflow.dev" in forbidden.json()["detail"]
    assert api.delete(f"/workflow/{run_id}", headers=submitter).status_code == 204


def test_an_image_outside_the_allowlist_is_refused_by_the_api_and_by_the_operator(
    secured: tuple[httpx.Client, dict[str, str]], k8s_namespace: str
) -> None:
    api, tokens = secured
    body: dict[str, Any] = {
        "dag": [{"name": "mine", "image": "evil.example/miner:latest", "command": ["mine"]}]
    }
    refused = api.post("/workflow", json=body, headers=bearer(tokens["submitter"]))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("Image not allowed: evil.example/miner:latest")

    # kubectl is no way around it: the operator fails the run and creates no Job
    run = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": "by-kubectl", "namespace": k8s_namespace},
        "spec": body,
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(run))

    def phase() -> str | None:
        obj = json.loads(
            kubectl("get", "workflowrun", "by-kubectl", "-n", k8s_namespace, "-o", "json")
        )
        found: str | None = (obj.get("status") or {}).get("phase")
        return found

    wait_until(lambda: phase() == "Failed", within=30)
    obj = json.loads(kubectl("get", "workflowrun", "by-kubectl", "-n", k8s_namespace, "-o", "json"))
    assert obj["status"]["message"].startswith(
        "Invalid workflow: Image not allowed: evil.example/miner:latest"
    )
    jobs = json.loads(kubectl("get", "jobs", "-n", k8s_namespace, "-o", "json"))["items"]
    assert jobs == []


def test_approving_is_a_permission_of_its_own(
    secured: tuple[httpx.Client, dict[str, str]], k8s_namespace: str
) -> None:
    """The `approve` verb on workflowruns (docs/security.md gives the Role): a submitter,
    who may create, patch and delete runs, may not approve; an approver may."""
    api, tokens = secured
    submitter = bearer(tokens["submitter"])
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "approver", "namespace": k8s_namespace},
        "rules": [
            {"apiGroups": [GROUP], "resources": ["workflowruns"], "verbs": ["get", "approve"]}
        ],
    }
    kubectl("create", "serviceaccount", "approver", "-n", k8s_namespace)
    kubectl("apply", "-f", "-", stdin=json.dumps(role))
    kubectl(
        "create", "rolebinding", "approver", "-n", k8s_namespace, "--role=approver",
        f"--serviceaccount={k8s_namespace}:approver",
    )  # fmt: skip
    approver = bearer(token_of(k8s_namespace, "approver"))
    gated = {"dag": [{"name": "gate", "approval": {}}, {"name": "after", "task": "task_a",
             "dependsOn": ["gate"]}]}  # fmt: skip
    run_id = api.post("/workflow", json=gated, headers=submitter).json()["run_id"]
    with httpx.Client(base_url=str(api.base_url), headers=submitter, timeout=30) as as_submitter:
        wait_until(
            lambda: as_submitter.get(f"/workflow/{run_id}/status").json().get("gate") == "Waiting"
        )
        refused = as_submitter.post(f"/workflow/{run_id}/tasks/gate/approve")
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            f"Forbidden: system:serviceaccount:{k8s_namespace}:submitter may not approve "
            f"workflowruns.stageflow.dev in namespace {k8s_namespace}"
        )
        approved = api.post(f"/workflow/{run_id}/tasks/gate/approve", headers=approver)
        assert approved.status_code == 202, approved.text
        run = wait_for_run(as_submitter, run_id)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["tasks"]["gate"]["decision"]["by"] == (
        f"system:serviceaccount:{k8s_namespace}:approver"
    )


def test_templates_and_schedules_are_permissions_of_their_own(
    secured: tuple[httpx.Client, dict[str, str]], k8s_namespace: str
) -> None:
    """RBAC on workflowtemplates and schedules, apart from workflowruns: an author who may
    write templates and schedules, and a submitter who may only run what exists."""
    api, tokens = secured
    submitter = bearer(tokens["submitter"])
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "author", "namespace": k8s_namespace},
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["workflowtemplates", "schedules"],
                "verbs": ["get", "list", "create", "update", "patch", "delete"],
            }
        ],
    }
    kubectl("create", "serviceaccount", "author", "-n", k8s_namespace)
    kubectl("apply", "-f", "-", stdin=json.dumps(role))
    kubectl(
        "create", "rolebinding", "author", "-n", k8s_namespace, "--role=author",
        f"--serviceaccount={k8s_namespace}:author",
    )  # fmt: skip
    author = bearer(token_of(k8s_namespace, "author"))
    template = {"dag": [{"name": "a", "task": "task_a"}]}
    refused = api.put("/templates/flow", json=template, headers=submitter)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"Forbidden: system:serviceaccount:{k8s_namespace}:submitter may not create "
        f"workflowtemplates.stageflow.dev in namespace {k8s_namespace}"
    )
    assert api.put("/templates/flow", json=template, headers=author).status_code == 201
    # running a template is creating a run: the submitter may, the author may not
    by_reference = {"templateRef": {"name": "flow"}}
    assert api.post("/workflow", json=by_reference, headers=author).status_code == 403
    run = api.post("/workflow", json=by_reference, headers=submitter)
    assert run.status_code == 202, run.text
    schedule = {"schedule": "@daily", "templateRef": {"name": "flow"}, "suspend": True}
    assert api.put("/schedules/daily", json=schedule, headers=submitter).status_code == 403
    assert api.put("/schedules/daily", json=schedule, headers=author).status_code == 201
    assert api.post("/schedules/daily/pause", headers=submitter).status_code == 403
    assert api.post("/schedules/daily/resume", headers=author).status_code == 200
    assert api.get("/schedules", headers=submitter).status_code == 403
    assert api.delete("/schedules/daily", headers=author).status_code == 204
