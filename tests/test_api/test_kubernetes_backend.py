"""The kubernetes backend with the official `kubernetes` client mocked (pytest-mock), and the
calls kube/direct.py sends answered by a fake of its one request method.

These pin down the calls the API makes to the apiserver; the same HTTP contract
on a real apiserver is the e2e tier's job (tests/e2e).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from unittest.mock import MagicMock

import kubernetes.client
import pytest
from fastapi.testclient import TestClient
from kubernetes.client.exceptions import ApiException
from pytest_mock import MockerFixture
from urllib3.exceptions import MaxRetryError

from stageflow.api import create_app
from stageflow.api.backends import KubernetesBackend
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from stageflow.kube import GROUP, PLURAL, VERSION, KubeClient, record_from_object
from stageflow.kube.config import KubeSettings
from stageflow.kube.direct import DirectCalls
from stageflow.kube.errors import KubeUnavailableError
from stageflow.store import RedisMirrorWriter, RedisStore
from tests.support.redis_server import free_port
from tests.support.workflows import SEED

NAMESPACE = "team-a"
TIMEOUT = KubeSettings().request_timeout()  # every call is bounded


def workflow_run(
    run_id: str, *, phase: str | None = None, created: str = "2026-11-01T00:00:00Z"
) -> dict[str, Any]:
    spec = {
        "failFast": True,
        "executor": "inprocess",
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": "task_a", "task": "task_a"},
                    {"name": "task_b", "task": "task_b"},
                ],
            },
        ],
    }
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": run_id, "namespace": NAMESPACE, "creationTimestamp": created},
        "spec": spec,
    }
    if phase is not None:
        task_phase = "Succeeded" if phase == "Succeeded" else "Running"
        obj["status"] = {
            "phase": phase,
            "progress": "2/2" if phase == "Succeeded" else "0/2",
            "tasks": {
                "task_a": {"phase": task_phase, "attempts": 1},
                "task_b": {"phase": task_phase, "attempts": 1},
            },
        }
    return obj


def not_found() -> ApiException:
    return ApiException(status=404, reason="Not Found")


@pytest.fixture
def custom(mocker: MockerFixture) -> MagicMock:
    """The CustomObjectsApi every KubeClient gets."""
    api = MagicMock(name="CustomObjectsApi")
    mocker.patch.object(kubernetes.client, "CustomObjectsApi", return_value=api)
    return api


class Direct:
    """What the kube client sends directly (kube/direct.py: create, status patch, Event),
    recorded, and the apiserver's answer to it: `answer(method, path, body)` gives
    (status, body); by default a create is answered with the object created."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.answer: Callable[[str, str, Any], tuple[int, Any]] = self.created

    @staticmethod
    def created(method: str, path: str, body: Any) -> tuple[int, Any]:
        stamped = {"creationTimestamp": "2026-11-01T00:00:00Z", **body["metadata"]}
        return 201, {**body, "metadata": stamped}

    async def request(
        self, _calls: DirectCalls, method: str, path: str, body: bytes, **_: Any
    ) -> tuple[int, str, bytes]:
        sent = json.loads(body)
        self.sent.append((method, path, sent))
        status, answer = self.answer(method, path, sent)
        return status, HTTPStatus(status).phrase, json.dumps(answer).encode()

    def bodies(self, method: str, path: str) -> list[Any]:
        return [body for m, p, body in self.sent if (m, p) == (method, path)]


RUNS_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"


@pytest.fixture(autouse=True)
def direct(mocker: MockerFixture) -> Direct:
    """The direct calls, answered here instead of by an apiserver."""
    fake = Direct()
    mocker.patch.object(DirectCalls, "request", autospec=True, side_effect=fake.request)
    return fake


@pytest.fixture
def version_api(mocker: MockerFixture) -> MagicMock:
    api = MagicMock(name="VersionApi")
    api.get_code.return_value.git_version = "v1.20.2"
    mocker.patch.object(kubernetes.client, "VersionApi", return_value=api)
    return api


def make_client(tasks: TaskRegistry, store: RedisStore | None = None) -> TestClient:
    kube = KubeClient(kubernetes.client.Configuration(host="http://apiserver.invalid"))
    settings = ApiSettings(backend="kubernetes", namespace=NAMESPACE)
    backend = KubernetesBackend(kube, store, tasks, settings, namespace=NAMESPACE)
    return TestClient(create_app(settings, tasks=tasks, backend=backend))


@pytest.fixture
def client(tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock) -> Iterator[TestClient]:
    with make_client(tasks) as test_client:
        yield test_client


def test_submit_creates_the_workflow_run(client: TestClient, direct: Direct) -> None:
    response = client.post("/workflow", json=SEED)
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert response.json()["status"] == "Pending"
    assert response.headers["location"] == f"/workflow/{run_id}"
    [body] = direct.bodies("POST", RUNS_PATH)
    assert body["metadata"]["name"] == run_id
    assert uuid.UUID(run_id).version == 4
    assert body["kind"] == "WorkflowRun"
    assert body["spec"]["cancelRequested"] is False
    assert body["spec"]["workflow"][1]["tasks"] == [
        {"name": "task_c", "task": "task_c", "params": {}, "retries": 0, "retryBackoffSeconds": 1.0}
    ]


def test_invalid_requests_create_nothing(client: TestClient, direct: Direct) -> None:
    response = client.post(
        "/workflow", json={"workflow": [{"type": "parallel", "tasks": ["task_x"]}]}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown task: task_x"}
    assert client.post("/workflow", json={}).status_code == 422
    assert direct.sent == []


def test_reads_come_from_the_workflow_run_without_redis(
    client: TestClient, custom: MagicMock
) -> None:
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id)
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Pending",
        "task_b": "Pending",
    }
    body = client.get(f"/workflow/{run_id}").json()
    assert body["run_id"] == run_id
    assert body["namespace"] == NAMESPACE
    assert body["status"]["progress"] == "0/2"
    custom.get_namespaced_custom_object.assert_called_with(
        GROUP, VERSION, NAMESPACE, PLURAL, run_id, _request_timeout=TIMEOUT
    )


def test_unknown_runs_are_404(client: TestClient, custom: MagicMock) -> None:
    custom.get_namespaced_custom_object.side_effect = not_found()
    custom.delete_namespaced_custom_object.side_effect = not_found()
    run_id = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/workflow/{run_id}"),
        ("GET", f"/workflow/{run_id}/status"),
        ("POST", f"/workflow/{run_id}/cancel"),
        ("DELETE", f"/workflow/{run_id}"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Workflow not found"}


def test_cancel_patches_the_spec(client: TestClient, custom: MagicMock) -> None:
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Running")
    custom.patch_namespaced_custom_object.return_value = workflow_run(run_id, phase="Running")
    response = client.post(f"/workflow/{run_id}/cancel")
    assert response.status_code == 202
    custom.patch_namespaced_custom_object.assert_called_once_with(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        run_id,
        {"spec": {"cancelRequested": True}},
        _request_timeout=TIMEOUT,
    )


def test_cancelling_a_finished_run_is_409(client: TestClient, custom: MagicMock) -> None:
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Succeeded")
    response = client.post(f"/workflow/{run_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"detail": "Workflow already finished (Succeeded)"}
    custom.patch_namespaced_custom_object.assert_not_called()


def test_delete_deletes_the_workflow_run(client: TestClient, custom: MagicMock) -> None:
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Running")
    custom.delete_namespaced_custom_object.return_value = {"status": "Success"}
    assert client.delete(f"/workflow/{run_id}").status_code == 204
    custom.delete_namespaced_custom_object.assert_called_once_with(
        GROUP, VERSION, NAMESPACE, PLURAL, run_id, _request_timeout=TIMEOUT
    )


def test_list_without_redis_reads_workflow_runs(client: TestClient, custom: MagicMock) -> None:
    older, newer, other = (str(uuid.uuid4()) for _ in range(3))
    custom.list_namespaced_custom_object.return_value = {
        "items": [
            workflow_run(older, phase="Succeeded", created="2026-11-01T00:00:00Z"),
            workflow_run(newer, phase="Running", created="2026-11-02T00:00:00Z"),
            workflow_run(other, phase="Succeeded", created="2026-11-03T00:00:00Z"),
        ]
    }
    listed = client.get("/workflows", params={"limit": 2}).json()
    assert [item["run_id"] for item in listed["items"]] == [other, newer]
    rest = client.get("/workflows", params={"limit": 2, "cursor": listed["next_cursor"]}).json()
    assert [item["run_id"] for item in rest["items"]] == [older]
    succeeded = client.get("/workflows", params={"phase": "Succeeded"}).json()
    assert [item["run_id"] for item in succeeded["items"]] == [other, older]
    custom.list_namespaced_custom_object.assert_called_with(
        GROUP, VERSION, NAMESPACE, PLURAL, _request_timeout=TIMEOUT
    )


def test_apiserver_down_is_503(
    client: TestClient, custom: MagicMock, version_api: MagicMock, direct: Direct
) -> None:
    down = MaxRetryError(pool=None, url="/apis", reason="Connection refused")  # type: ignore[arg-type]
    custom.get_namespaced_custom_object.side_effect = down

    def unreachable(*_: Any) -> tuple[int, Any]:
        raise KubeUnavailableError("apiserver unreachable: connection refused")

    direct.answer = unreachable
    version_api.get_code.side_effect = down
    response = client.get(f"/workflow/{uuid.uuid4()}")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Kubernetes API: apiserver unreachable")
    assert client.post("/workflow", json=SEED).status_code == 503
    assert client.get("/readyz").status_code == 503


def test_apiserver_refusal_is_502(client: TestClient, direct: Direct) -> None:
    direct.answer = lambda *_: (403, {"kind": "Status", "reason": "Forbidden"})
    response = client.post("/workflow", json=SEED)
    assert response.status_code == 502
    assert "403 Forbidden" in response.json()["detail"]


def test_with_redis_down_reads_fall_back_to_the_workflow_run(
    tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock
) -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Succeeded")
    custom.list_namespaced_custom_object.return_value = {
        "items": [workflow_run(run_id, phase="Succeeded")]
    }
    with make_client(tasks, dead) as client:
        assert client.get(f"/workflow/{run_id}/status").json() == {
            "task_a": "Succeeded",
            "task_b": "Succeeded",
        }
        assert client.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Succeeded"
        assert [item["run_id"] for item in client.get("/workflows").json()["items"]] == [run_id]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["apiserver"] == "v1.20.2"
        assert ready.json()["checks"]["redis"].startswith("unavailable")


def test_redis_first_when_it_has_the_run(
    tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock, redis_url: str
) -> None:
    import asyncio

    from stageflow.kube import record_from_object

    run_id = str(uuid.uuid4())
    record = record_from_object(workflow_run(run_id, phase="Succeeded"))

    async def seed() -> None:
        writer = RedisMirrorWriter.from_url(redis_url)  # the operator's
        await writer.mirror(record, frozenset(record.status.tasks), version="7")
        await writer.close()

    asyncio.run(seed())
    with make_client(tasks, RedisStore.from_url(redis_url, namespace=NAMESPACE)) as client:
        assert client.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Succeeded"
        assert client.get(f"/workflow/{run_id}/status").json() == {
            "task_a": "Succeeded",
            "task_b": "Succeeded",
        }
    custom.get_namespaced_custom_object.assert_not_called()


def test_what_a_miss_read_from_the_workflow_run_is_never_read_older_later(
    tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock, redis_url: str
) -> None:
    """The mirror behind: a run that ended before the mirror wrote even its creation is
    read from the WorkflowRun (Succeeded) and put into Redis, so the mirror's late write
    of the creation (an older version) cannot make the next read say Pending."""
    run_id = str(uuid.uuid4())
    ended = workflow_run(run_id, phase="Succeeded")
    ended["metadata"]["resourceVersion"] = "12"
    custom.get_namespaced_custom_object.return_value = ended
    created = record_from_object(workflow_run(run_id))

    async def late_mirror() -> bool:
        writer = RedisMirrorWriter.from_url(redis_url)  # the operator's
        try:
            return await writer.mirror(created, frozenset(created.status.tasks), version="9")
        finally:
            await writer.close()

    async def mirror_synced() -> None:  # an operator mirrors every namespace into this Redis
        writer = RedisMirrorWriter.from_url(redis_url)
        try:
            await writer.mark_synced("*", "server")
        finally:
            await writer.close()

    asyncio.run(mirror_synced())
    with make_client(tasks, RedisStore.from_url(redis_url, namespace=NAMESPACE)) as client:
        assert client.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Succeeded"
        assert asyncio.run(late_mirror()) is False  # refused: Redis holds version 12
        assert client.get(f"/workflow/{run_id}/status").json() == {
            "task_a": "Succeeded",
            "task_b": "Succeeded",
        }
    assert custom.get_namespaced_custom_object.call_count == 1  # the second read was Redis's


def test_no_read_repair_into_a_redis_no_operator_mirrors(
    tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock, redis_url: str
) -> None:
    """Nothing would keep a repaired run up to date there: every read goes to the cluster."""
    run_id = str(uuid.uuid4())
    custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Running")
    with make_client(tasks, RedisStore.from_url(redis_url, namespace=NAMESPACE)) as client:
        assert client.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Running"
        custom.get_namespaced_custom_object.return_value = workflow_run(run_id, phase="Succeeded")
        assert client.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Succeeded"
    assert custom.get_namespaced_custom_object.call_count == 2


def test_a_job_task_log_is_its_pods_log(
    client: TestClient, custom: MagicMock, mocker: MockerFixture
) -> None:
    core = mocker.patch.object(kubernetes.client, "CoreV1Api").return_value
    run_id = str(uuid.uuid4())
    obj = workflow_run(run_id, phase="Running")
    obj["status"]["tasks"]["task_b"]["jobName"] = "task-b-job-a1"
    custom.get_namespaced_custom_object.return_value = obj
    pod = MagicMock()
    pod.metadata.name = "task-b-job-a1-x7k2p"
    pod.status.phase = "Running"
    core.list_namespaced_pod.return_value.items = [pod]
    core.read_namespaced_pod_log.return_value = "fetched 3 rows\n"
    with make_client(client.app.state.registry) as fresh:  # type: ignore[attr-defined]
        response = fresh.get(f"/workflow/{run_id}/tasks/task_b/logs")
    assert response.status_code == 200
    assert response.text == "fetched 3 rows\n"
    core.list_namespaced_pod.assert_called_with(
        NAMESPACE, label_selector="job-name=task-b-job-a1", _request_timeout=TIMEOUT
    )
    core.read_namespaced_pod_log.assert_called_with(
        "task-b-job-a1-x7k2p", NAMESPACE, limit_bytes=65536, _request_timeout=TIMEOUT
    )

    pod.status.phase = "Pending"
    with make_client(client.app.state.registry) as fresh:  # type: ignore[attr-defined]
        waiting = fresh.get(f"/workflow/{run_id}/tasks/task_b/logs")
    assert waiting.status_code == 404
    assert waiting.json() == {"detail": "No logs yet for task task_b: its pod has not started"}


def test_an_image_outside_the_allowlist_is_400_and_creates_nothing(
    client: TestClient, direct: Direct
) -> None:
    body = {"dag": [{"name": "x", "image": "evil.example/miner:latest", "command": ["mine"]}]}
    response = client.post("/workflow", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Image not allowed: evil.example/miner:latest (task x; "
        "STAGEFLOW_TASK_IMAGES allows: stageflow:0.1.0)"
    }
    named = {"dag": [{"name": "y", "task": "task_a", "executor": "job", "serviceAccountName": "a"}]}
    refused = client.post("/workflow", json=named)
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("Service account not allowed: a (task y;")
    assert direct.sent == []


def test_the_allowlist_comes_from_stageflow_task_images(
    tasks: TaskRegistry, custom: MagicMock, version_api: MagicMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGEFLOW_TASK_IMAGES", "ghcr.io/acme/*, busybox:1.36")
    with make_client(tasks) as client:
        for image, code in (
            ("ghcr.io/acme/report:2", 202),
            ("busybox:1.36", 202),
            ("busybox:latest", 400),
            ("stageflow:0.1.0", 400),  # the list replaces the default
        ):
            body = {"dag": [{"name": "x", "image": image}]}
            assert client.post("/workflow", json=body).status_code == code, image


def test_the_submitter_is_an_annotation_and_in_the_record(
    tasks: TaskRegistry, direct: Direct, version_api: MagicMock, tmp_path: Any
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t0k ada editor\n")
    settings = ApiSettings(
        backend="kubernetes", namespace=NAMESPACE, auth_mode="token", auth_tokens_file=tokens
    )
    kube = KubeClient(kubernetes.client.Configuration(host="http://apiserver.invalid"))
    backend = KubernetesBackend(kube, None, tasks, settings, namespace=NAMESPACE)
    with TestClient(create_app(settings, tasks=tasks, backend=backend)) as client:
        response = client.post("/workflow", json=SEED, headers={"Authorization": "Bearer t0k"})
    assert response.status_code == 202
    [created] = direct.bodies("POST", RUNS_PATH)
    assert created["metadata"]["annotations"]["stageflow.dev/submitted-by"] == "ada"
    assert record_from_object(created).submitted_by == "ada"
