"""`helm install` into the real apiserver, and what each service account may do there."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.support.chart import CHART, helm_binary
from tests.support.cluster import Cluster, kubectl
from tests.support.rbac import Permission, api_needs, is_cluster_scoped, operator_needs

pytestmark = pytest.mark.e2e


def helm(*args: str) -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("no helm: run ../shared/k8s/install.sh (it installs helm)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def release(e2e_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A namespace to install into; the release is uninstalled and the namespace deleted after."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    yield "sf", namespace
    subprocess.run(
        [helm_binary() or "helm", "uninstall", "sf", "-n", namespace],
        capture_output=True,
        check=False,
    )
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def objects(namespace: str) -> set[tuple[str, str]]:
    listing = json.loads(
        kubectl(
            "get",
            "deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/instance=sf",
            "-o",
            "json",
        )
    )
    return {(item["kind"], item["metadata"]["name"]) for item in listing["items"]}


def test_install_with_defaults_creates_every_object(release: tuple[str, str]) -> None:
    name, namespace = release
    out = helm("install", name, str(CHART), "-n", namespace)
    assert "STATUS: deployed" in out
    assert f"kubectl -n {namespace} port-forward svc/sf-stageflow-api 8080:80" in out  # NOTES
    assert "curl -s -X POST localhost:8080/workflow" in out
    assert objects(namespace) == {
        ("Deployment", "sf-stageflow-api"),
        ("Deployment", "sf-stageflow-operator"),
        ("Deployment", "sf-stageflow-redis"),
        ("Service", "sf-stageflow-api"),
        ("Service", "sf-stageflow-redis"),
        ("Service", "sf-stageflow-operator-metrics"),
        ("ServiceAccount", "sf-stageflow-api"),
        ("ServiceAccount", "sf-stageflow-operator"),
        ("Role", "sf-stageflow-api"),
        ("Role", "sf-stageflow-operator"),
        ("Role", "sf-stageflow-operator-leader"),
        ("RoleBinding", "sf-stageflow-api"),
        ("RoleBinding", "sf-stageflow-operator"),
        ("RoleBinding", "sf-stageflow-operator-leader"),
        ("PodDisruptionBudget", "sf-stageflow-api"),
        ("PodDisruptionBudget", "sf-stageflow-operator"),
    }
    # The controller-manager turned the Deployments into pods (which never run: no kubelet).
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    assert len(pods) == 5  # 2 API replicas, 2 operators (leader and standby), 1 Redis


def test_install_without_the_bundled_redis(release: tuple[str, str]) -> None:
    name, namespace = release
    helm(
        "install",
        name,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "redis.bundled=false",
        "--set",
        "redis.url=redis://cache:6379/0",
    )
    created = objects(namespace)
    assert ("Deployment", "sf-stageflow-redis") not in created
    assert ("Service", "sf-stageflow-redis") not in created
    assert ("Deployment", "sf-stageflow-api") in created
    assert ("Deployment", "sf-stageflow-operator") in created


# What neither service account may ever do (what each must do comes from tests/support/rbac.py).
FORBIDDEN = [
    Permission("", "secrets", "get"),
    Permission("", "secrets", "list"),
    Permission("", "pods", "create"),
    Permission("", "pods/exec", "create"),
    Permission("apps", "deployments", "create"),
]


LEASE_NAME = "sf-stageflow-operator"  # the chart grants get/update on this Lease alone


def is_lease(permission: Permission) -> bool:
    return permission.resource == "leases"


def can_i(namespace: str, account: str, permission: Permission, *, where: str) -> bool:
    resource, _, subresource = permission.resource.partition("/")
    target = f"{resource}.{permission.group}" if permission.group else resource
    if is_lease(permission) and permission.verb != "create":
        target += f"/{LEASE_NAME}"  # a Role with resourceNames answers only for that name
    args = [
        "auth",
        "can-i",
        permission.verb,
        target,
        "-n",
        where,
        f"--as=system:serviceaccount:{namespace}:{account}",
    ]
    if subresource:
        args.append(f"--subresource={subresource}")
    done = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() == "yes"


def test_service_accounts_can_do_exactly_what_they_need(release: tuple[str, str]) -> None:
    """The real apiserver's RBAC, asked about every permission the code needs (derived from
    the code, tests/support/rbac.py): granted in the release's namespace, nowhere else."""
    name, namespace = release
    helm("install", name, str(CHART), "-n", namespace)
    wrong: list[tuple[str, str, str]] = []
    for account, needs, other in (
        ("sf-stageflow-operator", operator_needs(), api_needs()),
        ("sf-stageflow-api", api_needs(), operator_needs()),
    ):
        for permission in sorted(needs):
            if not can_i(namespace, account, permission, where=namespace):
                wrong.append((account, str(permission), "refused"))
        for permission in sorted((other - needs) | set(FORBIDDEN)):
            if can_i(namespace, account, permission, where=namespace):
                wrong.append((account, str(permission), "allowed but not needed"))
        for permission in sorted(needs):  # namespaced by default (reviews are in no namespace)
            if not is_cluster_scoped(permission) and can_i(
                namespace, account, permission, where="default"
            ):
                wrong.append((account, str(permission), "allowed in namespace default"))
    assert wrong == []


def test_cluster_wide_rbac_lets_the_operator_watch_every_namespace(
    release: tuple[str, str],
) -> None:
    name, namespace = release
    helm("install", name, str(CHART), "-n", namespace, "--set", "rbac.clusterWide=true")
    operator = "sf-stageflow-operator"
    for permission in sorted(operator_needs()):
        where = namespace if is_lease(permission) else "default"  # its Lease: the release's
        assert can_i(namespace, operator, permission, where=where), permission
    for permission in FORBIDDEN:
        assert not can_i(namespace, operator, permission, where="default"), permission
    create_run = Permission("stageflow.dev", "workflowruns", "create")
    assert not can_i(namespace, "sf-stageflow-api", create_run, where="default")
    subprocess.run(
        [helm_binary() or "helm", "uninstall", name, "-n", namespace],
        capture_output=True,
        check=False,
    )
