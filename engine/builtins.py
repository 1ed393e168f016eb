"""The built-in tasks: the seed assignment's four, and a few that make demos and tests honest.

`sleep` and `fail` make timing and failure visible; `echo` returns its params;
`http_get` talks to an external service so tests can show how such a dependency
is mocked (with respx, at httpx's transport). It connects only where the egress
policy allows (engine/egress.py) and never repeats a URL's credentials in an error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from stageflow.engine.config import EngineSettings
from stageflow.engine.egress import EgressError, EgressPolicy, guarded_transport, redact_url
from stageflow.engine.registry import task


def _announce(letter: str) -> bool:
    """Print what the assignment's tasks print (`Running task A`), so the two logs compare."""
    print(f"Running task {letter}")
    return True


@task
def task_a() -> bool:
    """Print and succeed (the seed workflow's first parallel task)."""
    return _announce("A")


@task
def task_b() -> bool:
    """Print and succeed (the seed workflow's second parallel task)."""
    return _announce("B")


@task
def task_c() -> bool:
    """Print and succeed (the seed workflow's final task)."""
    return _announce("C")


@task
def task_d() -> bool:
    """Print and succeed."""
    return _announce("D")


@task("sleep")
async def sleep_task(seconds: float = 1.0) -> bool:
    """Wait `seconds` without blocking anything, then succeed."""
    await asyncio.sleep(float(seconds))
    return True


@task("fail")
def fail_task(message: str = "failed on purpose") -> bool:
    """Fail with `message`."""
    raise RuntimeError(message)


@task("echo")
def echo_task(**params: Any) -> dict[str, Any]:
    """Return the params as the task's outputs."""
    return dict(params)


@task("noop")
async def noop_task() -> bool:
    """Succeed at once (for measuring the engine's own overhead)."""
    return True


@task("http_get")
async def http_get(
    url: str, expect_status: int = 200, timeout_seconds: float = 10.0
) -> dict[str, Any]:
    """GET `url`; succeed when the response has `expect_status`. Loopback, link-local and
    this pod's own addresses are refused (STAGEFLOW_HTTP_ALLOW / STAGEFLOW_HTTP_DENY).

    The body is streamed and counted, never held, and reading stops past
    STAGEFLOW_HTTP_GET_MAX_BYTES (a 400 MB answer was once read whole)."""
    shown = redact_url(url)
    limit = EngineSettings().http_get_max_bytes  # read where the task runs
    too_large = (
        f"GET {shown}: the response is larger than {limit} bytes (STAGEFLOW_HTTP_GET_MAX_BYTES)"
    )
    transport = guarded_transport(EgressPolicy.from_env())
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_seconds, transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise RuntimeError(too_large)
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise RuntimeError(too_large)
    except (httpx.HTTPError, EgressError) as error:  # httpx's messages may hold the URL
        raise RuntimeError(f"GET {shown} failed: {type(error).__name__}: {error}") from None
    if response.status_code != expect_status:
        raise RuntimeError(f"GET {shown} returned {response.status_code}, expected {expect_status}")
    return {"status": response.status_code, "bytes": size}
