"""A real `stageflow api` process on a free port, for tests that talk to it over HTTP
(the client, the CLI, replicas)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.redis_server import free_port


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_api(*, redis_url: str | None = None, env: dict[str, str] | None = None) -> ApiServer:
    """Start `stageflow api` (local backend; on Redis when `redis_url` is given) and wait,
    bounded, until it is ready."""
    port = free_port()
    environment = {
        **os.environ,
        "STAGEFLOW_STATUS_FLUSH_SECONDS": "0.01",
        "STAGEFLOW_LOG_LEVEL": "warning",
        **(env or {}),
    }
    environment.pop("STAGEFLOW_REDIS_URL", None)
    if redis_url is not None:
        environment["STAGEFLOW_REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [sys.executable, "-m", "stageflow.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
    )
    server = ApiServer(process=process, url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=server.url, timeout=5) as probe:
        while True:
            try:
                if probe.get("/readyz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"stageflow api on port {port} did not become ready")
            time.sleep(0.1)


@contextmanager
def running_api(*, redis_url: str | None = None) -> Iterator[ApiServer]:
    server = start_api(redis_url=redis_url)
    try:
        yield server
    finally:
        server.stop()
