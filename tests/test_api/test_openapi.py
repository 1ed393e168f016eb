"""The OpenAPI document a client generator is happy with, and /docs offline (issue 12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry

OPERATIONS = {
    ("post", "/workflow"): "submitWorkflow",
    ("get", "/workflow/{run_id}"): "getWorkflow",
    ("get", "/workflows"): "listWorkflows",
    ("post", "/workflow/{run_id}/cancel"): "cancelWorkflow",
    ("post", "/workflow/{run_id}/retry"): "retryWorkflow",
    ("post", "/workflow/{run_id}/suspend"): "suspendWorkflow",
    ("post", "/workflow/{run_id}/tasks/{task_id}/approve"): "approveTask",
    ("post", "/workflow/{run_id}/tasks/{task_id}/reject"): "rejectTask",
    ("post", "/workflow/{run_id}/resume"): "resumeWorkflow",
    ("delete", "/workflow/{run_id}"): "deleteWorkflow",
    ("get", "/workflow/{run_id}/status"): "getWorkflowStatus",
    ("get", "/workflow/{run_id}/events"): "streamWorkflowEvents",
    ("get", "/workflow/{run_id}/tasks/{task_id}/logs"): "getTaskLogs",
    ("get", "/tasks"): "listTasks",
    ("put", "/templates/{name}"): "putTemplate",
    ("get", "/templates"): "listTemplates",
    ("get", "/templates/{name}"): "getTemplate",
    ("get", "/templates/{name}/revisions/{revision}"): "getTemplateRevision",
    ("delete", "/templates/{name}"): "deleteTemplate",
    ("put", "/schedules/{name}"): "putSchedule",
    ("get", "/schedules"): "listSchedules",
    ("get", "/schedules/{name}"): "getSchedule",
    ("delete", "/schedules/{name}"): "deleteSchedule",
    ("post", "/schedules/{name}/pause"): "pauseSchedule",
    ("post", "/schedules/{name}/resume"): "resumeSchedule",
    ("post", "/schedules/{name}/backfill"): "backfillSchedule",
    ("get", "/healthz"): "getHealth",
    ("get", "/readyz"): "getReadiness",
}


@pytest.fixture
def app_client(tasks: TaskRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(), tasks=tasks)) as client:
        yield client


@pytest.fixture
def document(app_client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = app_client.get("/openapi.json").json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_operation_ids_are_stable(document: dict[str, Any]) -> None:
    found = {(method, path): op["operationId"] for method, path, op in operations(document)}
    assert found == OPERATIONS


def test_every_request_and_response_has_an_example(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for code, response in operation["responses"].items():
            if code == "204":
                assert "content" not in response
                continue
            for media_type, media in response["content"].items():
                assert "example" in media or "examples" in media, (method, path, code, media_type)
        body = operation.get("requestBody")
        if body is not None:
            assert len(body["content"]["application/json"]["examples"]) >= 2


def test_errors_are_documented_with_their_schema(document: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    submit = document["paths"]["/workflow"]["post"]["responses"]
    for code in ("400", "401", "403", "413", "503"):
        assert submit[code]["content"]["application/json"]["schema"] == error, code
    cancel = document["paths"]["/workflow/{run_id}/cancel"]["post"]["responses"]
    assert {"404", "409"} <= set(cancel)
    assert cancel["409"]["content"]["application/json"]["schema"] == error
    assert document["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_every_field_has_a_description(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        for field, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field}"


def test_docs_load_swagger_ui_from_the_package(app_client: TestClient) -> None:
    page = app_client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", page.text)
    assert urls
    for url in urls:
        assert url.startswith("/ui/static/swagger/"), url
        assert app_client.get(url).status_code == 200, url
    assert "cdn" not in page.text.lower()
    assert app_client.get("/redoc").status_code == 404
