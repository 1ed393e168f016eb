"""Who may do what through the API (issue 11): token mode, the kubernetes mode's reviews
(with a stand-in apiserver client), the loopback rule, redaction, the submitter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.config
import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.auth import REDACTED, AuthConfigError, make_authorizer
from stageflow.api.auth.kubernetes import KubernetesAuth
from stageflow.api.auth.settings import AuthSettings, is_loopback, resolve_mode
from stageflow.api.config import ApiSettings
from stageflow.cli import main
from stageflow.engine import TaskRegistry, WorkflowRequest, compile_workflow
from stageflow.engine.records import new_record
from stageflow.kube import KubeClient
from stageflow.kube.reviews import (
    SubjectAccessReviewSpec,
    SubjectAccessReviewStatus,
    TokenReviewStatus,
)
from tests.support.workflows import SEED

VIEWER, EDITOR = "v13w3r-token", "3d1t0r-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# TOKEN NAME ROLE\n{VIEWER} vera viewer\n\n{EDITOR} ed editor\n")
    return path


@pytest.fixture
def token_client(tokens_file: Path, tasks: TaskRegistry) -> Iterator[TestClient]:
    settings = ApiSettings(
        auth_mode="token", auth_tokens_file=tokens_file, status_flush_seconds=0.01
    )
    with TestClient(create_app(settings, tasks=tasks)) as client:
        yield client


# -- token mode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/workflow"),
        ("GET", "/workflows"),
        ("GET", "/workflow/00000000-0000-4000-8000-000000000000"),
        ("GET", "/workflow/00000000-0000-4000-8000-000000000000/status"),
        ("POST", "/workflow/00000000-0000-4000-8000-000000000000/cancel"),
        ("DELETE", "/workflow/00000000-0000-4000-8000-000000000000"),
        ("GET", "/tasks"),
    ],
)
def test_no_or_a_bad_token_is_401_with_a_bearer_challenge(
    token_client: TestClient, method: str, path: str
) -> None:
    for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = token_client.request(method, path, headers=headers, json=SEED)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]


def test_probes_and_docs_stay_open(token_client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert token_client.get(path).status_code == 200, path
    schemes = token_client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"  # /docs offers "Authorize"


def test_a_viewer_reads_and_an_editor_writes(token_client: TestClient) -> None:
    refused = token_client.post("/workflow", json=SEED, headers=bearer(VIEWER))
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "Forbidden: vera may not create workflowruns.stageflow.dev in namespace default"
    )
    submitted = token_client.post("/workflow", json=SEED, headers=bearer(EDITOR))
    assert submitted.status_code == 202
    run_id = submitted.json()["run_id"]
    run = token_client.get(f"/workflow/{run_id}", headers=bearer(VIEWER))
    assert run.status_code == 200
    assert run.json()["submitted_by"] == "ed"
    assert token_client.get(f"/workflow/{run_id}/status", headers=bearer(VIEWER)).status_code == 200
    assert token_client.get("/workflows", headers=bearer(VIEWER)).status_code == 200
    assert token_client.get("/tasks", headers=bearer(VIEWER)).status_code == 200
    for method, path, verb in (
        ("POST", f"/workflow/{run_id}/cancel", "patch"),
        ("DELETE", f"/workflow/{run_id}", "delete"),
    ):
        response = token_client.request(method, path, headers=bearer(VIEWER))
        assert response.status_code == 403
        assert f"may not {verb} workflowruns.stageflow.dev" in response.json()["detail"]
    assert token_client.delete(f"/workflow/{run_id}", headers=bearer(EDITOR)).status_code == 204


def test_a_forbidden_caller_learns_nothing_about_a_run(token_client: TestClient) -> None:
    """The 401/403 comes before the lookup: no 404 tells an outsider which runs exist."""
    missing = "/workflow/00000000-0000-4000-8000-000000000000"
    assert token_client.get(missing).status_code == 401
    assert token_client.delete(missing, headers=bearer(VIEWER)).status_code == 403


def test_the_submitter_survives_the_redis_store(
    tokens_file: Path, tasks: TaskRegistry, redis_url: str
) -> None:
    settings = ApiSettings(auth_mode="token", auth_tokens_file=tokens_file, redis_url=redis_url)
    with TestClient(create_app(settings, tasks=tasks)) as client:
        run_id = client.post("/workflow", json=SEED, headers=bearer(EDITOR)).json()["run_id"]
        run = client.get(f"/workflow/{run_id}", headers=bearer(VIEWER)).json()
    assert run["submitted_by"] == "ed"


def test_the_tokens_file_is_read_again_when_it_changes(
    token_client: TestClient, tokens_file: Path
) -> None:
    assert token_client.get("/workflows", headers=bearer("new-token")).status_code == 401
    tokens_file.write_text(f"{EDITOR} ed editor\nnew-token nina viewer\n")
    os.utime(tokens_file, ns=(1, 1))  # a different mtime even on a coarse clock
    assert token_client.get("/workflows", headers=bearer("new-token")).status_code == 200
    assert token_client.get("/workflows", headers=bearer(VIEWER)).status_code == 401  # revoked


def test_a_broken_tokens_file_keeps_the_last_good_tokens(
    token_client: TestClient, tokens_file: Path
) -> None:
    tokens_file.write_text("only-two fields\n")
    os.utime(tokens_file, ns=(2, 2))
    assert token_client.get("/workflows", headers=bearer(VIEWER)).status_code == 200


@pytest.mark.parametrize(
    ("content", "complaint"),
    [("tok name admin\n", ":1: expected `TOKEN NAME ROLE`"), ("tok\n", ":1: expected")],
)
def test_a_malformed_tokens_file_stops_the_api_at_start(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(AuthConfigError, match=complaint):
        make_authorizer(AuthSettings(auth_mode="token", auth_tokens_file=path), host="::1")
    with pytest.raises(AuthConfigError, match="needs STAGEFLOW_AUTH_TOKENS_FILE"):
        make_authorizer(AuthSettings(auth_mode="token"), host="::1")


# -- the loopback rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("api.example.com", False),
    ],
)
def test_only_loopback_hosts_default_to_no_auth(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        assert resolve_mode(AuthSettings(), host=host) == "none"
    else:
        with pytest.raises(AuthConfigError, match="set STAGEFLOW_AUTH_MODE"):
            resolve_mode(AuthSettings(), host=host)
    assert resolve_mode(AuthSettings(auth_mode="none"), host=host) == "none"  # said explicitly


def test_stageflow_api_on_every_interface_without_a_mode_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STAGEFLOW_AUTH_MODE", raising=False)
    monkeypatch.setattr("uvicorn.run", lambda *_, **__: pytest.fail("it must not serve"))
    assert main(["api", "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert "Refusing to serve on 0.0.0.0 without authentication" in error
    assert "STAGEFLOW_AUTH_MODE" in error


def test_stageflow_api_serves_on_every_interface_when_the_mode_is_explicit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAGEFLOW_AUTH_MODE", "none")
    served: list[str] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda server, **_: served.append(server.config.host))
    assert main(["api", "--host", "0.0.0.0"]) == 0
    assert served == ["0.0.0.0"]


# -- redaction -----------------------------------------------------------------------------------

JOB_WITH_ENV: dict[str, Any] = {
    "dag": [
        {
            "name": "report",
            "task": "task_a",
            "executor": "job",
            "env": {
                "API_KEY": "s3cr3t-value",
                "DB_PASSWORD": {"valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            },
        }
    ],
}


def test_a_viewer_never_sees_plain_env_values(
    token_client: TestClient, tasks: TaskRegistry
) -> None:
    """A Job task's plain env values are `<redacted>` for a caller who may only read (in the
    run and in the events' snapshot); a secretKeyRef only names a Secret and is shown."""
    plan = compile_workflow(WorkflowRequest.model_validate(JOB_WITH_ENV), registry=tasks)
    record = new_record(plan, submitted_by="ed")  # stored as the operator's mirror would:
    backend = token_client.app.state.backend  # type: ignore[attr-defined]
    assert token_client.portal is not None
    token_client.portal.call(backend._store.create, record)  # (the local backend runs no Jobs)
    for role, token in (("viewer", VIEWER), ("editor", EDITOR)):
        body = token_client.get(f"/workflow/{record.run_id}", headers=bearer(token)).json()
        env = body["spec"]["dag"][0]["env"]
        assert env["DB_PASSWORD"] == {
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}
        }, role
        assert env["API_KEY"] == (REDACTED if role == "viewer" else "s3cr3t-value"), role
    with token_client.stream(
        "GET", f"/workflow/{record.run_id}/events", headers=bearer(VIEWER)
    ) as events:
        snapshot = next(line for line in events.iter_lines() if line.startswith("data:"))
    assert "s3cr3t-value" not in snapshot
    assert REDACTED in snapshot


# -- kubernetes mode, its reviews stood in for --------------------------------------------------


class FakeReviews:
    """KubeClient's two review calls: tokens it knows, and what RBAC would allow."""

    def __init__(self, users: dict[str, str], rules: set[tuple[str, str]]) -> None:
        self.users, self.rules = users, rules
        self.token_reviews: list[str] = []
        self.access_reviews: list[SubjectAccessReviewSpec] = []

    async def review_token(self, token: str) -> TokenReviewStatus:
        self.token_reviews.append(token)
        if token not in self.users:
            return {"authenticated": False, "error": "invalid bearer token"}
        return {
            "authenticated": True,
            "user": {"username": self.users[token], "uid": "u-1", "groups": ["team"]},
        }

    async def review_access(self, spec: SubjectAccessReviewSpec) -> SubjectAccessReviewStatus:
        self.access_reviews.append(spec)
        verb = spec["resourceAttributes"]["verb"]
        return {"allowed": (spec["user"], verb) in self.rules}

    async def aclose(self) -> None:
        return None


@pytest.fixture
def reviews() -> FakeReviews:
    sa = "system:serviceaccount:flows:"
    return FakeReviews(
        {"viewer-token": f"{sa}viewer", "submitter-token": f"{sa}submitter"},
        {(f"{sa}viewer", verb) for verb in ("get", "list")}
        | {(f"{sa}submitter", verb) for verb in ("get", "list", "create", "patch", "delete")},
    )


@pytest.fixture
def kube_client(reviews: FakeReviews, tasks: TaskRegistry) -> Iterator[TestClient]:
    settings = ApiSettings(auth_mode="kubernetes", namespace="flows", host="0.0.0.0")
    auth = KubernetesAuth(reviews, cache_seconds=60)  # type: ignore[arg-type]
    with TestClient(create_app(settings, tasks=tasks, auth=auth)) as client:
        yield client


def test_kubernetes_mode_asks_rbac_about_workflowruns_in_the_namespace(
    kube_client: TestClient, reviews: FakeReviews
) -> None:
    assert kube_client.get("/workflows", headers=bearer("forged")).status_code == 401
    refused = kube_client.post("/workflow", json=SEED, headers=bearer("viewer-token"))
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "Forbidden: system:serviceaccount:flows:viewer may not create "
        "workflowruns.stageflow.dev in namespace flows"
    )
    submitted = kube_client.post("/workflow", json=SEED, headers=bearer("submitter-token"))
    assert submitted.status_code == 202
    run = kube_client.get(f"/workflow/{submitted.json()['run_id']}", headers=bearer("viewer-token"))
    assert run.json()["submitted_by"] == "system:serviceaccount:flows:submitter"
    assert reviews.access_reviews[0] == {
        "user": "system:serviceaccount:flows:viewer",
        "uid": "u-1",
        "groups": ["team"],
        "resourceAttributes": {
            "namespace": "flows",
            "verb": "create",
            "group": "stageflow.dev",
            "resource": "workflowruns",
        },
    }


def test_kubernetes_mode_caches_review_answers(
    kube_client: TestClient, reviews: FakeReviews
) -> None:
    for _ in range(5):
        assert kube_client.get("/workflows", headers=bearer("viewer-token")).status_code == 200
    assert reviews.token_reviews == ["viewer-token"]
    assert [spec["resourceAttributes"]["verb"] for spec in reviews.access_reviews] == ["list"]


async def test_a_review_cache_of_zero_seconds_asks_every_time(reviews: FakeReviews) -> None:
    auth = KubernetesAuth(reviews, cache_seconds=0)  # type: ignore[arg-type]
    for _ in range(3):
        principal = await auth.authenticate("viewer-token")
        assert principal is not None
        assert await auth.allowed(principal, "get", "flows")
    assert len(reviews.token_reviews) == 3
    assert len(reviews.access_reviews) == 3


def test_kubernetes_mode_makes_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    def load_configuration() -> None:
        made.append(1)

    monkeypatch.setattr("stageflow.kube.load_configuration", load_configuration)
    monkeypatch.setattr(KubeClient, "__init__", lambda self, _configuration: None)
    auth = make_authorizer(AuthSettings(auth_mode="kubernetes"), host="0.0.0.0")
    assert isinstance(auth, KubernetesAuth)
    assert made == [1]


def test_kubernetes_mode_without_a_cluster_says_so_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    # the client reads KUBECONFIG once, when it is imported (the e2e tier sets it)
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "missing")
    )
    with pytest.raises(AuthConfigError, match="STAGEFLOW_AUTH_MODE=kubernetes needs a cluster"):
        make_authorizer(AuthSettings(auth_mode="kubernetes"), host="0.0.0.0")


def test_without_auth_no_submitter_is_claimed(tasks: TaskRegistry) -> None:
    with TestClient(create_app(ApiSettings(), tasks=tasks)) as client:
        run_id = client.post("/workflow", json=SEED).json()["run_id"]
        assert "submitted_by" not in client.get(f"/workflow/{run_id}").json()
