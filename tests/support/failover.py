"""Operator candidates with leader election on a real apiserver: shared by the failover e2e
test and bench/failover.py.

A candidate is `stageflow operator` with STAGEFLOW_LEADER_ELECTION on, namespaced to
one test namespace, logging in JSON-free text so its lines can be searched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import ROOT

LEADING = "leading: "


@dataclass
class Candidate:
    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stageflow.cli", "operator"],
                env={**self.env, "STAGEFLOW_LEADER_IDENTITY": self.name},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def leading(self) -> bool:
        return f"{LEADING}{self.name} holds" in self.log()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def candidates(
    *,
    namespace: str,
    workdir: Path,
    kubeconfig: str,
    lease_seconds: int,
    renew_seconds: float,
    retry_seconds: float,
    execution_log: Path,
    count: int = 2,
    extra_env: dict[str, str] | None = None,
) -> list[Candidate]:
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "STAGEFLOW_NAMESPACE": namespace,
        "STAGEFLOW_LEADER_ELECTION": "true",
        "STAGEFLOW_LEASE_DURATION_SECONDS": str(lease_seconds),
        "STAGEFLOW_LEASE_RENEW_DEADLINE_SECONDS": str(renew_seconds),
        "STAGEFLOW_LEASE_RETRY_SECONDS": str(retry_seconds),
        "STAGEFLOW_TASK_MODULES": "tests.fixtures.logged_tasks",
        "STAGEFLOW_TEST_EXECUTION_LOG": str(execution_log),
        "STAGEFLOW_LOG_FORMAT": "text",
        **(extra_env or {}),
    }
    env.pop("STAGEFLOW_REDIS_URL", None)
    return [
        Candidate(name=f"op-{index}", env=env, log_path=workdir / f"op-{index}.log")
        for index in range(count)
    ]


def wait_for_leader(group: list[Candidate], within: float = 60) -> Candidate:
    deadline = time.monotonic() + within
    while True:
        leaders = [candidate for candidate in group if candidate.process and candidate.leading]
        if leaders:
            assert len(leaders) == 1, [c.name for c in leaders]
            return leaders[0]
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.name}\n{c.log()[-2000:]}" for c in group)
            raise AssertionError(f"no leader within {within}s\n{logs}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Execution:
    event: str
    run: str
    label: str
    pid: int
    at: float


def executions(path: Path) -> list[Execution]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        event, run, label, pid, at = line.split()
        found.append(Execution(event, run, label, int(pid), float(at)))
    return found
