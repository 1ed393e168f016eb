"""Built-in tasks; how an external HTTP dependency is mocked (respx, at httpx's transport)."""

from __future__ import annotations

import httpx
import respx

from stageflow.engine import RunPhase, TaskPhase
from tests.test_engine.conftest import RunBody

HEALTH = "https://status.example.test/health"


def http_get_body(**params: object) -> dict[str, object]:
    return {"dag": [{"name": "probe", "task": "http_get", "params": {"url": HEALTH, **params}}]}


async def test_http_get_succeeds_against_a_mocked_service(run_body: RunBody) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(HEALTH).mock(return_value=httpx.Response(200, text="ok"))
        status = await run_body(http_get_body())
    assert route.call_count == 1
    assert status.phase is RunPhase.SUCCEEDED
    assert status.tasks["probe"].outputs == {"status": 200, "bytes": 2}


async def test_http_get_fails_on_an_unexpected_status(run_body: RunBody) -> None:
    with respx.mock() as mock:
        mock.get(HEALTH).mock(return_value=httpx.Response(503))
        status = await run_body(http_get_body())
    assert status.tasks["probe"].phase is TaskPhase.FAILED
    assert status.tasks["probe"].message == f"RuntimeError: GET {HEALTH} returned 503, expected 200"


async def test_http_get_retries_a_flaky_service(run_body: RunBody) -> None:
    with respx.mock() as mock:
        mock.get(HEALTH).mock(
            side_effect=[httpx.ConnectError("refused"), httpx.Response(200, text="up")]
        )
        body = http_get_body()
        body["dag"][0].update({"retries": 1, "retryBackoffSeconds": 0})  # type: ignore[index]
        status = await run_body(body)
    assert status.tasks["probe"].phase is TaskPhase.SUCCEEDED
    assert status.tasks["probe"].attempts == 2


async def test_echo_returns_its_params_as_outputs(run_body: RunBody) -> None:
    status = await run_body(
        {"dag": [{"name": "e", "task": "echo", "params": {"n": 3, "tags": ["a"]}}]}
    )
    assert status.tasks["e"].outputs == {"n": 3, "tags": ["a"]}
