"""Built-in tasks; how an external HTTP dependency is mocked (respx, at httpx's transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from stageflow.engine import RunPhase, TaskPhase
from tests.support.engine import RunBody

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


async def test_http_get_stops_reading_past_its_limit(
    run_body: RunBody, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: a 400 MB response was read whole; now reading stops at the limit."""
    monkeypatch.setenv("STAGEFLOW_HTTP_GET_MAX_BYTES", "1000")
    chunks_read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(10_000):
            chunks_read += 1
            yield b"x" * 100

    expected = (
        f"RuntimeError: GET {HEALTH}: the response is larger than 1000 bytes "
        "(STAGEFLOW_HTTP_GET_MAX_BYTES)"
    )
    with respx.mock() as mock:
        mock.get(HEALTH).mock(return_value=httpx.Response(200, content=endless()))
        status = await run_body(http_get_body())
        assert status.tasks["probe"].message == expected
        assert chunks_read <= 11
        mock.get(HEALTH).mock(return_value=httpx.Response(200, content=b"x" * 5000))
        declared = await run_body(http_get_body())  # Content-Length says so before any read
        assert declared.tasks["probe"].message == expected
        mock.get(HEALTH).mock(return_value=httpx.Response(200, content=b"x" * 1000))
        within = await run_body(http_get_body())
        assert within.tasks["probe"].outputs == {"status": 200, "bytes": 1000}
