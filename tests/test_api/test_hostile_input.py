"""Issue 10 at the door: every hostile body is a 4xx naming its problem, on every backend,
and whatever is accepted stays readable. Each test here failed (a 500, or a 202 for a run
that could then never be read) before its fix."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from stageflow.api.guards import BodyGuard, _validation_error
from tests.support.api import read_events, submit, wait_for_run
from tests.support.workflows import SEED


def post_raw(client: TestClient, raw: str | bytes) -> Any:
    return client.post("/workflow", content=raw, headers={"content-type": "application/json"})


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def task(**fields: str) -> str:
    """A dag body with one task whose fields are raw JSON text."""
    extra = "".join(f', "{key}": {value}' for key, value in fields.items())
    return '{"dag": [{"name": "a", "task": "echo"' + extra + "}]}"


@pytest.mark.parametrize("field", ["retries", "timeoutSeconds", "retryBackoffSeconds"])
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422(client: TestClient, field: str, number: str) -> None:
    response = post_raw(client, task(**{field: number}))
    assert response.status_code == 422
    detail = json.loads(response.text)["detail"]  # strict JSON: it can be encoded
    assert detail[0]["ctx"]["error"] in {
        f"{number.lstrip('-')} is not a JSON number",
        f"-{number.lstrip('-')} is not a JSON number",
        f"number out of range: {number}",
    }


@pytest.mark.parametrize(
    "raw",
    [
        task(params='{"x": "\\ud800"}'),
        '{"dag": [{"name": "\\ud800", "task": "noop"}]}',
        '{"dag": [{"name": "a", "task": "\\udfff"}]}',
        task(params='{"\\ud800": 1}'),
    ],
)
def test_lone_surrogates_are_422_and_nothing_is_stored(client: TestClient, raw: str) -> None:
    response = post_raw(client, raw)
    assert response.status_code == 422
    assert "lone surrogate" in response.json()["detail"][0]["ctx"]["error"]
    assert client.get("/workflows").json()["items"] == []


def test_json_nested_too_deeply_is_422(client: TestClient) -> None:
    response = post_raw(client, task(params='{"x": ' + nested(300) + "}"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["ctx"]["error"] == (
        "nested deeper than 32 levels (STAGEFLOW_MAX_JSON_DEPTH)"
    )
    very_deep = post_raw(client, task(params='{"x": ' + nested(100_000) + "}"))
    assert very_deep.status_code == 422


def test_what_is_accepted_can_be_read_and_streamed(client: TestClient) -> None:
    run_id = submit(
        client,
        json.loads(task(params='{"x": ' + nested(25) + ', "s": "caf\\u00e9 \\ud83d\\ude00"}')),
    )
    run = wait_for_run(client, run_id)
    assert run["spec"]["dag"][0]["params"]["s"] == "café 😀"
    with client.stream("GET", f"/workflow/{run_id}/events") as stream:
        events = read_events(stream.iter_lines())
    assert events[0][0] == "snapshot"


def test_a_long_string_is_422_naming_the_limit(client: TestClient) -> None:
    response = client.post(
        "/workflow",
        json={"dag": [{"name": "a", "task": "echo", "params": {"x": "y" * 70_000}}]},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["ctx"]["error"] == (
        "a string of 70000 characters (at most 65536, STAGEFLOW_MAX_STRING_LENGTH)"
    )


def test_a_large_body_is_413_naming_the_limit(client: TestClient) -> None:
    expected = {"detail": "Request body too large: at most 524288 bytes (STAGEFLOW_MAX_BODY_BYTES)"}
    response = post_raw(client, b" " * 600_000)
    assert (response.status_code, response.json()) == (413, expected)

    def chunks() -> Any:  # no Content-Length: counted while it is read
        for _ in range(100):
            yield b" " * 10_000

    chunked = client.post(
        "/workflow", content=chunks(), headers={"content-type": "application/json"}
    )
    assert (chunked.status_code, chunked.json()) == (413, expected)


async def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    """A slow client may not hold a request open: the guard stops waiting for its body."""
    app = FastAPI()

    @app.post("/")
    async def read(request: Request) -> int:
        return len(await request.body())

    guarded = BodyGuard(app, max_bytes=1024, read_timeout=0.05)
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("test", 1),
        "root_path": "",
    }
    await asyncio.wait_for(guarded(scope, receive, send), timeout=10)  # type: ignore[arg-type]
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"]) == {
        "detail": "Request body not received within 0.05s (STAGEFLOW_BODY_READ_TIMEOUT_SECONDS)"
    }


async def test_a_422_never_echoes_what_cannot_be_encoded() -> None:
    error = RequestValidationError(
        [
            {"type": "x", "loc": ("body", "name"), "msg": "bad", "input": "\ud800"},
            {"type": "y", "loc": ("body", "retries"), "msg": "bad", "input": float("nan")},
        ]
    )
    response = await _validation_error(None, error)  # type: ignore[arg-type]
    detail = json.loads(bytes(response.body))["detail"]
    assert [item["input"] for item in detail] == ["\\ud800", "nan"]


@pytest.mark.parametrize(
    "path", ["{id}:tasks", "{id}:logs", "{ID}", "{id}:deleted", "not-a-run", "{id}x"]
)
def test_what_is_not_a_run_id_is_404_everywhere(client: TestClient, path: str) -> None:
    """`DELETE /workflow/{ID}:tasks` once answered 204 and wiped the real run's task phases."""
    run_id = submit(client, SEED)
    wait_for_run(client, run_id)
    bad = path.format(id=run_id, ID=run_id.upper())
    for method, url in [
        ("DELETE", f"/workflow/{bad}"),
        ("GET", f"/workflow/{bad}"),
        ("GET", f"/workflow/{bad}/status"),
        ("GET", f"/workflow/{bad}/events"),
        ("POST", f"/workflow/{bad}/cancel"),
        ("GET", f"/workflow/{bad}/tasks/task_a/logs"),
    ]:
        response = client.request(method, url)
        assert (response.status_code, response.json()) == (404, {"detail": "Workflow not found"})
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Succeeded",
        "task_b": "Succeeded",
        "task_c": "Succeeded",
    }


def test_params_that_do_not_fit_the_task_are_400(client: TestClient) -> None:
    """Issue 10: `secs` was accepted, then failed with `sleep_task() got an unexpected
    keyword argument`, naming an internal function."""
    response = client.post(
        "/workflow", json={"dag": [{"name": "s", "task": "sleep", "params": {"secs": 1}}]}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Task s (task sleep): unknown param 'secs' (it takes: seconds)"},
    )
    assert client.get("/workflows").json()["items"] == []


def test_allow_lists_every_method_of_a_path(client: TestClient) -> None:
    """`OPTIONS /workflow/{id}` once left DELETE out of `Allow`, and `Allow` once named HEAD
    where HEAD answered 405 (FastAPI's routes serve only the methods they declare)."""
    path = f"/workflow/{uuid.uuid4()}"
    options = client.options(path)
    assert (options.status_code, options.headers["allow"]) == (204, "DELETE, GET, OPTIONS")
    put = client.put(path)
    assert (put.status_code, put.headers["allow"]) == (405, "DELETE, GET, OPTIONS")
    assert client.head(path).status_code == 405
    assert client.options("/workflow").headers["allow"] == "OPTIONS, POST"


def test_the_openapi_document_states_what_the_api_answers(client: TestClient) -> None:
    """Issue 10: `?cursor=` answered a 400 the schema did not list, and the exactly-one-of
    `workflow`/`dag` rule was not in the schema."""
    document = client.get("/openapi.json").json()
    assert "400" in document["paths"]["/workflows"]["get"]["responses"]
    request = document["components"]["schemas"]["WorkflowRequest"]
    assert request["oneOf"] == [{"required": ["workflow"]}, {"required": ["dag"]}]
    assert request["properties"]["dag"]["type"] == "array"  # not nullable: null is no form
    submit_responses = document["paths"]["/workflow"]["post"]["responses"]
    assert {"400", "408", "413", "422", "503"} <= set(submit_responses)
    events = document["paths"]["/workflow/{run_id}/events"]["get"]["responses"]
    assert {"404", "429", "503"} <= set(events)
