"""A real `stageflow api` process on a free port: for what TestClient cannot show
(sockets held open, slow clients, several streams at once, the loop under load)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from tests.support.orphans import die_with_parent
from tests.support.redis_server import free_port


def start_api(
    redis_url: str | None, **settings: str
) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """Start it with STAGEFLOW_<KEY> = value for each setting; wait until it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "STAGEFLOW_STATUS_FLUSH_SECONDS": "0.01",
        "STAGEFLOW_LOG_LEVEL": "warning",
        **{f"STAGEFLOW_{key.upper()}": value for key, value in settings.items()},
    }
    env.pop("STAGEFLOW_REDIS_URL", None)
    if redis_url is not None:
        env["STAGEFLOW_REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [sys.executable, "-m", "stageflow.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        preexec_fn=die_with_parent,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/readyz").status_code == 200:
                return process, client
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"stageflow api on port {port} did not become ready")
        time.sleep(0.1)


def stop_api(process: subprocess.Popen[bytes], client: httpx.Client) -> None:
    client.close()
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_api(redis_url: str | None, **settings: str) -> Iterator[httpx.Client]:
    process, client = start_api(redis_url, **settings)
    try:
        yield client
    finally:
        stop_api(process, client)
