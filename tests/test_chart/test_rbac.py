"""The chart's Roles against every Kubernetes call the operator and the API make.

The permissions needed are derived from the code (tests/support/rbac.py): each one must be
granted (no missing rule can ship again, issue 14) and each granted rule must be
needed (least privilege).
"""

from __future__ import annotations

from typing import Any

import pytest

from stageflow.kube import GROUP, PLURAL
from tests.support.chart import Render, find
from tests.support.rbac import (
    Permission,
    api_needs,
    kube_client_requests,
    operator_needs,
    permission_of,
)

REVIEWS = "sf-stageflow-flows-api-reviews"


def granted(docs: list[dict[str, Any]], kind: str, name: str) -> set[Permission]:
    role = find(docs, kind, name)
    return {
        Permission(group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_derivation_sees_the_calls_it_must() -> None:
    """A guard on the guard: known calls come out as the permissions Kubernetes checks."""
    assert permission_of("CoreV1Api", "read_namespaced_pod_log") == Permission(
        "", "pods/log", "get"
    )
    assert permission_of("CoreV1Api", "list_namespaced_pod") == Permission("", "pods", "list")
    assert permission_of("CustomObjectsApi", "patch_namespaced_custom_object_status") == (
        Permission(GROUP, f"{PLURAL}/status", "patch")
    )
    assert permission_of("CustomObjectsApi", "list_cluster_custom_object") == Permission(
        GROUP, PLURAL, "list"
    )
    assert permission_of("BatchV1Api", "delete_namespaced_job") == Permission(
        "batch", "jobs", "delete"
    )
    requests = kube_client_requests()
    assert requests["job_log"] == {
        Permission("", "pods", "list"),
        Permission("", "pods/log", "get"),
    }
    assert Permission(GROUP, f"{PLURAL}/status", "patch") in operator_needs()
    assert Permission(GROUP, PLURAL, "create") in api_needs()


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["namespaced", "cluster-wide"])
@pytest.mark.parametrize("component", ["operator", "api"])
def test_every_call_is_granted_and_every_grant_is_called(
    render: Render, component: str, cluster_wide: bool
) -> None:
    docs = render(f"rbac.clusterWide={str(cluster_wide).lower()}")
    kind = "ClusterRole" if cluster_wide and component == "operator" else "Role"
    has = granted(docs, kind, f"sf-stageflow-{component}")
    if component == "operator":  # its Lease, in the release's namespace
        has |= granted(docs, "Role", "sf-stageflow-operator-leader")
    if component == "api":  # auth mode kubernetes (the default): reviews are cluster-scoped
        has |= granted(docs, "ClusterRole", REVIEWS)
    needs = operator_needs() if component == "operator" else api_needs()
    missing = sorted(str(permission) for permission in needs - has)
    unused = sorted(str(permission) for permission in has - needs)
    assert missing == [], f"the {component} calls what its {kind} does not grant"
    assert unused == [], f"the {component}'s {kind} grants what it never calls"


def test_the_operator_may_read_pods_only_in_its_own_namespace(render: Render) -> None:
    """Namespaced by default: the operator's pod access is a Role, not a ClusterRole; the
    only ClusterRole is the API's, for the reviews (which no namespace holds)."""
    docs = render()
    assert Permission("", "pods", "list") in granted(docs, "Role", "sf-stageflow-operator")
    cluster_roles = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "ClusterRole"]
    assert cluster_roles == [REVIEWS]
    assert {str(p) for p in granted(docs, "ClusterRole", REVIEWS)} == {
        "create tokenreviews.authentication.k8s.io",
        "create subjectaccessreviews.authorization.k8s.io",
    }
    binding = find(docs, "ClusterRoleBinding", REVIEWS)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sf-stageflow-api", "namespace": "flows"}
    ]


@pytest.mark.parametrize("mode", ["none", "token"])
def test_only_the_kubernetes_mode_may_ask_for_reviews(render: Render, mode: str) -> None:
    extra = ["api.auth.tokensSecret=tokens"] if mode == "token" else []
    docs = render(f"api.auth.mode={mode}", *extra)
    assert not [doc for doc in docs if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")]
