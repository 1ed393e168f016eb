"""The Helm chart, rendered by the real helm: what matters about each object."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.chart import CHART, Render, find, run_helm
from tests.support.paths import ROOT

POD_KINDS = {"Deployment", "Pod"}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in docs:
        if doc["kind"] == "Deployment":
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            specs[doc["metadata"]["name"]] = doc["spec"]
    return specs


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    """Env values; one read from a Secret as `secret:NAME/KEY`."""
    spec = deployment["spec"]["template"]["spec"] if "template" in deployment["spec"] else None
    container = (spec or deployment["spec"])["containers"][0]
    return {item["name"]: _value(item) for item in container["env"]}


def _value(item: dict[str, Any]) -> str:
    if "value" in item:
        return str(item["value"])
    source = item["valueFrom"]
    if "fieldRef" in source:
        return f"field:{source['fieldRef']['fieldPath']}"
    ref = source["secretKeyRef"]
    return f"secret:{ref['name']}/{ref['key']}"


def test_lint_strict_is_clean(helm: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_default_objects(render: Render) -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in render())
    assert kinds == [
        ("ClusterRole", "sf-stageflow-flows-api-reviews"),
        ("ClusterRoleBinding", "sf-stageflow-flows-api-reviews"),
        ("Deployment", "sf-stageflow-api"),
        ("Deployment", "sf-stageflow-operator"),
        ("Deployment", "sf-stageflow-redis"),
        ("Pod", "sf-stageflow-test-seed"),
        ("PodDisruptionBudget", "sf-stageflow-api"),
        ("PodDisruptionBudget", "sf-stageflow-operator"),
        ("Role", "sf-stageflow-api"),
        ("Role", "sf-stageflow-operator"),
        ("Role", "sf-stageflow-operator-leader"),  # its Lease alone
        ("Role", "sf-stageflow-test"),  # helm test's: create/get workflowruns
        ("RoleBinding", "sf-stageflow-api"),
        ("RoleBinding", "sf-stageflow-operator"),
        ("RoleBinding", "sf-stageflow-operator-leader"),
        ("RoleBinding", "sf-stageflow-test"),
        ("Secret", "sf-stageflow-redis"),  # the bundled Redis's password
        ("Secret", "sf-stageflow-test-token"),
        ("Service", "sf-stageflow-api"),
        ("Service", "sf-stageflow-operator-metrics"),
        ("Service", "sf-stageflow-redis"),
        ("ServiceAccount", "sf-stageflow-api"),
        ("ServiceAccount", "sf-stageflow-operator"),
        ("ServiceAccount", "sf-stageflow-test"),
    ]


def test_the_crds_are_those_of_crds_itself(render: Render) -> None:
    crds = [doc for doc in render(crds=True) if doc["kind"] == "CustomResourceDefinition"]
    files = sorted((ROOT / "crds").glob("*.yaml"))
    assert [path.name for path in files] == [
        "schedule.yaml",
        "workflowrun.yaml",
        "workflowtemplate.yaml",
    ]
    by_name = {doc["metadata"]["name"]: doc for doc in crds}
    for path in files:
        crd = yaml.safe_load(path.read_text())
        assert by_name[crd["metadata"]["name"]] == crd, path.name
        link = CHART / "crds" / path.name
        assert link.is_symlink(), f"the chart's {path.name} must link to crds/, not copy it"
    assert len(crds) == len(files)


def test_every_object_has_the_standard_labels(render: Render) -> None:
    for doc in render():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "stageflow", doc["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "sf"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "stageflow-0.1.0"


def test_every_pod_meets_the_restricted_standard(render: Render) -> None:
    for name, spec in pod_specs(render()).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name


def test_one_operator_without_leader_election_recreates(render: Render) -> None:
    docs = render("operator.replicas=1", "operator.leaderElection.enabled=false")
    operator = find(docs, "Deployment", "sf-stageflow-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(operator)["STAGEFLOW_LEADER_ELECTION"] == "false"
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert ("PodDisruptionBudget", "sf-stageflow-operator") not in names
    assert ("Role", "sf-stageflow-operator-leader") not in names


def test_two_operators_elect_a_leader_on_a_lease(render: Render) -> None:
    docs = render()
    operator = find(docs, "Deployment", "sf-stageflow-operator")
    assert operator["spec"]["replicas"] == 2
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    env = env_of_all(operator)
    assert env["STAGEFLOW_LEADER_ELECTION"] == {"value": "true"}
    assert env["STAGEFLOW_LEASE_NAME"] == {"value": "sf-stageflow-operator"}
    assert env["STAGEFLOW_LEASE_NAMESPACE"] == {"value": "flows"}
    assert env["STAGEFLOW_LEASE_DURATION_SECONDS"] == {"value": "15"}
    assert env["STAGEFLOW_LEADER_IDENTITY"] == {
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}
    }
    budget = find(docs, "PodDisruptionBudget", "sf-stageflow-operator")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == operator["spec"]["selector"]["matchLabels"]
    leader = find(docs, "Role", "sf-stageflow-operator-leader")
    granted = {
        (group, resource, verb)
        for rule in leader["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")
    }
    binding = find(docs, "RoleBinding", "sf-stageflow-operator-leader")
    assert binding["subjects"][0]["name"] == "sf-stageflow-operator"


def test_metrics_ports_annotations_and_log_format(render: Render) -> None:
    docs = render()
    operator = find(docs, "Deployment", "sf-stageflow-operator")
    api = find(docs, "Deployment", "sf-stageflow-api")
    assert env_of(operator)["STAGEFLOW_METRICS_PORT"] == "9090"
    assert env_of(operator)["STAGEFLOW_LOG_FORMAT"] == "json"
    assert env_of(api)["STAGEFLOW_LOG_FORMAT"] == "json"
    ports = operator["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in ports
    for deployment, port in ((operator, "9090"), (api, "8080")):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port
        assert annotations["prometheus.io/path"] == "/metrics"
    service = find(docs, "Service", "sf-stageflow-operator-metrics")
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["spec"]["selector"] == operator["spec"]["selector"]["matchLabels"]
    assert "ServiceMonitor" not in {doc["kind"] for doc in docs}


def test_service_monitor_only_when_enabled(render: Render) -> None:
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.team=ops")
    monitor = find(docs, "ServiceMonitor", "sf-stageflow")
    assert monitor["metadata"]["labels"]["team"] == "ops"
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/instance": "sf"}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("http", "/metrics"),
        ("metrics", "/metrics"),
    ]
    api_service = find(docs, "Service", "sf-stageflow-api")
    assert "http" in {port["name"] for port in api_service["spec"]["ports"]}


def env_of_all(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {
        item["name"]: {k: v for k, v in item.items() if k != "name"} for item in container["env"]
    }


def test_operator_pod_settings(render: Render) -> None:
    docs = render()
    operator = find(docs, "Deployment", "sf-stageflow-operator")
    assert operator["spec"]["template"]["spec"]["containers"][0]["args"] == ["operator"]
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "sf-stageflow-operator"
    env = env_of(operator)
    assert env["STAGEFLOW_NAMESPACE"] == "flows"
    assert env["REDIS_PASSWORD"] == "secret:sf-stageflow-redis/password"
    assert env["STAGEFLOW_REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@sf-stageflow-redis:6379/0"
    assert env["STAGEFLOW_TASK_IMAGE"] == "stageflow:0.1.0"
    probe = operator["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "liveness"}


def test_api_rolls_with_probes_behind_a_service_and_a_pdb(render: Render) -> None:
    docs = render()
    api = find(docs, "Deployment", "sf-stageflow-api")
    assert api["spec"]["replicas"] == 2
    assert api["spec"]["strategy"]["type"] == "RollingUpdate"
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    env = env_of(api)
    assert env["STAGEFLOW_BACKEND"] == "kubernetes"
    assert env["STAGEFLOW_NAMESPACE"] == "flows"
    service = find(docs, "Service", "sf-stageflow-api")
    selector = api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert (
        find(docs, "PodDisruptionBudget", "sf-stageflow-api")["spec"]["selector"]["matchLabels"]
        == selector
    )


def test_cluster_wide_rbac(render: Render) -> None:
    docs = render("rbac.clusterWide=true")
    assert find(docs, "ClusterRole", "sf-stageflow-operator")
    binding = find(docs, "ClusterRoleBinding", "sf-stageflow-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sf-stageflow-operator", "namespace": "flows"}
    ]
    assert "STAGEFLOW_NAMESPACE" not in env_of(find(docs, "Deployment", "sf-stageflow-operator"))
    assert find(docs, "Role", "sf-stageflow-api")  # the API stays namespaced


def test_external_redis(render: Render) -> None:
    docs = render("redis.bundled=false", "redis.url=redis://cache.example:6379/3")
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert ("Deployment", "sf-stageflow-redis") not in names
    assert ("Service", "sf-stageflow-redis") not in names
    for deployment in ("sf-stageflow-api", "sf-stageflow-operator"):
        assert (
            env_of(find(docs, "Deployment", deployment))["STAGEFLOW_REDIS_URL"]
            == "redis://cache.example:6379/3"
        )


def test_images_and_task_settings(render: Render) -> None:
    docs = render(
        "image.repository=registry.example/stageflow",
        "image.tag=1.2.3",
        "tasks.serviceAccount=runner",
        "api.replicas=3",
    )
    api = find(docs, "Deployment", "sf-stageflow-api")
    assert api["spec"]["replicas"] == 3
    assert (
        api["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/stageflow:1.2.3"
    )
    env = env_of(find(docs, "Deployment", "sf-stageflow-operator"))
    assert env["STAGEFLOW_TASK_IMAGE"] == "registry.example/stageflow:1.2.3"
    assert env["STAGEFLOW_TASK_SERVICE_ACCOUNT"] == "runner"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("api.replicas=0", "api.replicas"),
        ("operator.leaderElection.enabled=false", "operator.replicas"),  # 2 replicas
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("redis.url=http://nope", "redis.url"),
        ("surprise=1", "surprise"),
    ],
)
def test_values_schema_rejects_bad_values(helm: str, setting: str, complaint: str) -> None:
    done = run_helm(helm, "template", "sf", str(CHART), "--set", setting)
    assert done.returncode != 0
    assert complaint in done.stderr


def test_helm_test_hook_submits_the_seed(render: Render) -> None:
    hook = find(render(), "Pod", "sf-stageflow-test-seed")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = hook["spec"]["containers"][0]["args"][0]
    assert '"task_a", "task_b"' in script
    assert "http://sf-stageflow-api:80" in script
    compile(script, "test-seed", "exec")


def test_notes_say_how_to_submit_the_first_run() -> None:
    """helm renders NOTES only on install (checked for real in tests/e2e/test_helm.py)."""
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert 'port-forward svc/{{ include "stageflow.fullname" . }}-api 8080:' in notes
    assert "curl -s -X POST localhost:8080/workflow" in notes
    assert "helm test {{ .Release.Name }}" in notes


def test_auth_is_on_and_the_api_and_operator_share_the_allowlists(render: Render) -> None:
    docs = render(
        "tasks.allowedImages={ghcr.io/acme/*,busybox:1.36}",
        "tasks.allowedServiceAccounts={reporter}",
        "http.deny={10.0.0.0/8}",
    )
    api = env_of(find(docs, "Deployment", "sf-stageflow-api"))
    operator = env_of(find(docs, "Deployment", "sf-stageflow-operator"))
    assert api["STAGEFLOW_AUTH_MODE"] == "kubernetes"
    assert "STAGEFLOW_AUTH_MODE" not in operator
    for env in (api, operator):
        assert env["STAGEFLOW_TASK_IMAGE"] == "stageflow:0.1.0"
        assert env["STAGEFLOW_TASK_IMAGES"] == "ghcr.io/acme/*,busybox:1.36"
        assert env["STAGEFLOW_TASK_SERVICE_ACCOUNTS"] == "reporter"
        assert env["STAGEFLOW_HTTP_DENY"] == "10.0.0.0/8"


def test_token_mode_mounts_the_tokens_secret(render: Render) -> None:
    docs = render("api.auth.mode=token", "api.auth.tokensSecret=api-tokens", "tests.token=t0k")
    api = find(docs, "Deployment", "sf-stageflow-api")
    env = env_of(api)
    assert env["STAGEFLOW_AUTH_MODE"] == "token"
    assert env["STAGEFLOW_AUTH_TOKENS_FILE"] == "/etc/stageflow/auth/tokens"
    volumes = api["spec"]["template"]["spec"]["volumes"]
    assert {"name": "auth-tokens", "secret": {"secretName": "api-tokens"}} in volumes
    assert find(docs, "Secret", "sf-stageflow-test-token")["stringData"] == {"token": "t0k"}
    seed = find(docs, "Pod", "sf-stageflow-test-seed")
    assert env_of(seed)["STAGEFLOW_TOKEN"] == "secret:sf-stageflow-test-token/token"


def test_token_mode_needs_a_tokens_secret(helm: str) -> None:
    done = run_helm(helm, "template", "sf", str(CHART), "--set", "api.auth.mode=token")
    assert done.returncode != 0
    assert "api.auth.tokensSecret is required" in done.stderr


def test_helm_test_uses_a_service_account_token_that_may_only_submit_and_read(
    render: Render,
) -> None:
    docs = render()
    secret = find(docs, "Secret", "sf-stageflow-test-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == (
        "sf-stageflow-test"
    )
    rules = find(docs, "Role", "sf-stageflow-test")["rules"]
    assert rules == [
        {"apiGroups": ["stageflow.dev"], "resources": ["workflowruns"], "verbs": ["create", "get"]}
    ]
    seed = find(docs, "Pod", "sf-stageflow-test-seed")
    assert env_of(seed)["STAGEFLOW_TOKEN"] == "secret:sf-stageflow-test-token/token"
    assert "Authorization" in seed["spec"]["containers"][0]["args"][0]


def test_redis_asks_for_a_generated_password(render: Render) -> None:
    docs = render()
    secret = find(docs, "Secret", "sf-stageflow-redis")
    assert len(secret["data"]["password"]) >= 40  # 32 random characters, base64
    redis = find(docs, "Deployment", "sf-stageflow-redis")["spec"]["template"]["spec"]
    container = redis["containers"][0]
    assert container["args"][-2:] == ["--requirepass", "$(REDISCLI_AUTH)"]
    assert env_of(find(docs, "Deployment", "sf-stageflow-redis"))["REDISCLI_AUTH"] == (
        "secret:sf-stageflow-redis/password"
    )
    plain = env_of(find(render("redis.auth=false"), "Deployment", "sf-stageflow-api"))
    assert plain["STAGEFLOW_REDIS_URL"] == "redis://sf-stageflow-redis:6379/0"


def test_network_policy_lets_only_the_api_and_operator_reach_redis(render: Render) -> None:
    assert not [doc for doc in render() if doc["kind"] == "NetworkPolicy"]
    policy = find(render("networkPolicy.enabled=true"), "NetworkPolicy", "sf-stageflow-redis")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    sources = policy["spec"]["ingress"][0]["from"]
    assert sorted(
        source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for source in sources
    ) == ["api", "operator"]
