"""The chaos tier's world: a control plane of its own, Redis, the operator, two API replicas,
and two observers that run through the whole test (the fixtures are in tests/chaos/conftest.py).

The control plane is started here with ../shared/k8s/up.sh on free ports and a run
directory of its own, because the test SIGKILLs its kube-apiserver: no other tier
ever sees that. The observers:
- `Watcher` follows the WorkflowRuns with the official client's watch (re-listing
  after every break, as a controller does) and records when it first saw each task
  `Succeeded` in a WorkflowRun: an attempt that starts after that is a re-run the
  product promised never to make;
- `Poller` reads the runs through both API replicas all along and records every answer
  (status code, or that it hung or failed to connect).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes.client
import kubernetes.config
import kubernetes.watch

from stageflow.kube import GROUP, PLURAL, VERSION
from tests.support.cluster import ApiProcess, OperatorProcess
from tests.support.paths import ROOT
from tests.support.redis_server import RedisServer, free_port

K8S = Path(os.environ.get("STAGEFLOW_SHARED_K8S", ROOT.parent / "shared" / "k8s"))
K8S_BIN = Path(os.environ.get("STAGEFLOW_K8S_HOME", Path.home() / ".cache" / "stageflow-k8s"))
NO_CONTROL_PLANE = (
    "no control-plane binaries: run ../shared/k8s/install.sh "
    "(the chaos tier starts its own apiserver with ../shared/k8s/up.sh)"
)
NAMESPACE = "chaos"
TASKS = "tests.fixtures.chaos_tasks"
REQUEST_TIMEOUT = 10.0  # an API answer slower than this counts as a hang


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + controller-manager from up.sh, in a run directory of our own."""

    run_dir: Path
    env: dict[str, str]
    restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)  # reaped at the end

    @property
    def kubeconfig(self) -> str:
        return str(self.run_dir / "kubeconfig")

    def _pid(self) -> int:
        return int((self.run_dir / "pids" / "kube-apiserver").read_text())

    def kill_apiserver(self) -> list[str]:
        """SIGKILL the apiserver; returns its command line, to start it again."""
        pid = self._pid()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            assert time.monotonic() < deadline, "the apiserver outlived SIGKILL"
            time.sleep(0.05)
        return [part.decode() for part in argv]

    def start_apiserver(self, argv: list[str]) -> None:
        with (self.run_dir / "logs" / "kube-apiserver.log").open("ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.restarted.append(process)
        (self.run_dir / "pids" / "kube-apiserver").write_text(str(process.pid))
        deadline = time.monotonic() + 90
        while subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", "get", "--raw=/readyz"],
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode:
            assert process.poll() is None, "the restarted apiserver exited"
            assert time.monotonic() < deadline, "the restarted apiserver is not ready"
            time.sleep(0.2)

    def kubectl(self, *args: str) -> str:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


@dataclass
class Chaos:
    """Everything the test drives and observes."""

    plane: ControlPlane
    redis: RedisServer
    operator: OperatorProcess
    apis: list[ApiProcess]
    log_dir: Path

    def kill_redis(self) -> None:
        """SIGKILL Redis and start an empty one on the same port (no persistence)."""
        assert self.redis.process is not None
        self.redis.process.kill()
        self.redis.process.wait(timeout=10)
        self.redis.process = None
        self.redis.start()

    def attempts_logged(self, key: str) -> list[tuple[str, float]]:
        """(`start`|`end`, unix time) lines of one task's own execution log."""
        path = self.log_dir / key
        if not path.exists():
            return []
        lines = [line.split() for line in path.read_text().splitlines() if line]
        return [(parts[0], float(parts[1])) for parts in lines]


def start_api(plane: ControlPlane, redis: RedisServer) -> ApiProcess:
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": plane.kubeconfig,
        "STAGEFLOW_BACKEND": "kubernetes",
        "STAGEFLOW_NAMESPACE": NAMESPACE,
        "STAGEFLOW_REDIS_URL": redis.url,
        "STAGEFLOW_LOG_LEVEL": "warning",
        "STAGEFLOW_TASK_MODULES": TASKS,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stageflow.cli", "api", "--port", str(port)], env=env, cwd=ROOT
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return ApiProcess(process, client)
        except httpx.TransportError:
            pass
        assert process.poll() is None, "stageflow api exited"
        assert time.monotonic() < deadline, "stageflow api did not start"
        time.sleep(0.1)


@dataclass
class Watcher:
    """When each task was first seen `Succeeded` in its WorkflowRun, and each retry's due time
    (`nextAttemptAt`) with when it was first seen (unix times)."""

    kubeconfig: str
    succeeded_at: dict[tuple[str, str], float] = field(default_factory=dict)
    retries_due: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)
    breaks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="chaos watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _see(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        for task_id, entry in ((obj.get("status") or {}).get("tasks") or {}).items():
            if entry.get("phase") == "Succeeded":
                self.succeeded_at.setdefault((name, task_id), now)
            if entry.get("nextAttemptAt"):
                due = datetime.fromisoformat(entry["nextAttemptAt"].replace("Z", "+00:00"))
                seen = self.retries_due.setdefault((name, task_id), {})
                seen.setdefault(due.timestamp(), now)

    def _follow(self) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=self.kubeconfig, client_configuration=configuration
        )
        api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
        while not self._stop.is_set():
            try:
                listing = cast(
                    dict[str, Any],
                    api.list_namespaced_custom_object(
                        GROUP, VERSION, NAMESPACE, PLURAL, _request_timeout=5
                    ),
                )
                now = time.time()
                for obj in listing["items"]:
                    self._see(obj, now)
                stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    NAMESPACE,
                    PLURAL,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                    _request_timeout=35,
                )
                event: dict[str, Any]
                for event in stream:
                    self._see(event["object"], time.time())
                    if self._stop.is_set():
                        return
            except Exception:  # the apiserver is away: list again when it is back
                self.breaks += 1
                self._stop.wait(0.2)


@dataclass
class Poller:
    """Reads runs through both replicas the whole time; counts every kind of answer."""

    apis: list[httpx.Client]
    run_ids: list[str]
    answers: Counter[str] = field(default_factory=Counter)
    worst: dict[str, str] = field(default_factory=dict)  # a sample of each bad answer
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="chaos poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * REQUEST_TIMEOUT)

    def _poll(self) -> None:
        chooser = random.Random(9)
        while not self._stop.is_set():
            api = chooser.choice(self.apis)
            if self.run_ids and chooser.random() < 0.8:
                path = f"/workflow/{chooser.choice(self.run_ids)}/status"
            else:
                path = "/workflows?limit=5"
            try:
                response = api.get(path)
                kind = str(response.status_code)
                if response.status_code >= 500 and response.status_code != 503:
                    self.worst.setdefault(kind, f"{path}: {response.text[:300]}")
            except httpx.TimeoutException:
                kind = "hang"
                self.worst.setdefault(kind, path)
            except httpx.TransportError as error:
                kind = "transport error"
                self.worst.setdefault(kind, f"{path}: {error}")
            self.answers[kind] += 1
            self._stop.wait(0.02)

    def bad(self) -> dict[str, int]:
        """Answers that are not 2xx, 4xx or 503."""
        return {
            kind: count
            for kind, count in self.answers.items()
            if not (kind.isdigit() and (kind[0] in "24" or kind == "503"))
        }


def body(key: str, *, seconds: float, flaky: bool, doomed: bool) -> dict[str, Any]:
    """The seed's shape (two in parallel, then one) with tasks that log their attempts.
    `flaky`: the last task fails its first attempt and has retries to spare;
    `doomed`: it fails every attempt (retries 1), so the run ends Failed."""
    last: dict[str, Any] = {
        "name": "c",
        "task": "chaos_step",
        "params": {"key": f"{key}.c", "seconds": seconds},
    }
    if flaky:
        last.update(retries=3, retryBackoffSeconds=1.0)
        last["params"]["fail_times"] = 1
    if doomed:
        last.update(retries=1, retryBackoffSeconds=0.5)
        last["params"]["fail_times"] = -1
    step = {"task": "chaos_step"}
    return {
        "name": key,
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {**step, "name": "a", "params": {"key": f"{key}.a", "seconds": seconds}},
                    {**step, "name": "b", "params": {"key": f"{key}.b", "seconds": seconds}},
                ],
            },
            {"type": "sequential", "tasks": [last]},
        ],
    }


def workflow_runs(plane: ControlPlane) -> dict[str, dict[str, Any]]:
    listing = json.loads(plane.kubectl("get", "wfr", "-n", NAMESPACE, "-o", "json"))
    return {obj["metadata"]["name"]: obj for obj in listing["items"]}
