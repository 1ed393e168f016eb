"""The end-to-end tier's world: a real kube-apiserver, a real Redis, real processes.

The control plane comes from ../shared/k8s/up.sh (KUBECONFIG). Without it, every
test that needs it skips and says how to get it (the `e2e_cluster` fixture, in
tests/conftest.py); with KUBECONFIG set but the apiserver unreachable, they fail (CI
always gives a cluster).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.orphans import die_with_parent
from tests.support.paths import ROOT
from tests.support.redis_server import RedisServer, free_port

EXAMPLE_TASKS = "examples.data_quality.tasks"  # the e2e tier runs the example pipeline
NO_CLUSTER = (
    "no Kubernetes cluster: run ../shared/k8s/install.sh && ../shared/k8s/up.sh, "
    "then `. /tmp/stageflow-k8s/env` (sets KUBECONFIG)"
)


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=60, input=stdin, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def workflow_run(namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", "wfr", name, "-n", namespace, "-o", "json"))
    return found


@dataclass
class OperatorProcess:
    """`stageflow operator` as a separate process, which a test may kill and start again."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stageflow.cli", "operator"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=die_with_parent,
            )
        self.starts += 1
        deadline = time.monotonic() + 30
        while "Initial authentication has finished" not in self.log()[-20_000:] or (
            self.log().count("Initial authentication has finished") < self.starts
        ):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stageflow operator did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last status write; what a crash or an OOM kill does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    client: httpx.Client

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=15)


@dataclass
class Cluster:
    kubeconfig: str
    redis: RedisServer
    operator: OperatorProcess
    workdir: Path
    apis: list[ApiProcess] = field(default_factory=list)

    def start_api(
        self, namespace: str, *, task_modules: str = EXAMPLE_TASKS, **settings: str
    ) -> httpx.Client:
        """`stageflow api` (kubernetes backend) on loopback; `settings` add STAGEFLOW_* env."""
        port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "STAGEFLOW_BACKEND": "kubernetes",
            "STAGEFLOW_NAMESPACE": namespace,
            "STAGEFLOW_REDIS_URL": self.redis.url,
            "STAGEFLOW_LOG_LEVEL": "warning",
            "STAGEFLOW_TASK_MODULES": task_modules,
            **settings,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "stageflow.cli", "api", "--port", str(port)],
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.apis.append(ApiProcess(process, client))
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/healthz").status_code == 200:
                    return client
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stageflow api (kubernetes backend) did not start")
            time.sleep(0.1)
