"""A 10,000-instance run on the real apiserver, its operator SIGKILLed halfway: the
resumed run re-runs no instance recorded as succeeded (from the tasks' own execution log),
every instance runs, the run succeeds, and its WorkflowRun, sampled all along, never
reached 1 MiB."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stageflow.kube import record_from_object
from stageflow.models.status import TaskPhase
from tests.support.api import submit, wait_for_run
from tests.support.cluster import Cluster, OperatorProcess, kubectl
from tests.support.failover import executions
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

COUNT = 10_000
MIB = 1024 * 1024


class Sampler(threading.Thread):
    """Reads the WorkflowRun over and over (as the apiserver returns it, managedFields and
    all) and keeps the largest size seen and the newest object."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(daemon=True)
        self.namespace, self.name = namespace, name
        self.largest = 0
        self.samples = 0
        self.newest: dict[str, Any] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            text = kubectl("get", "wfr", self.name, "-n", self.namespace, "-o", "json")
            self.largest = max(self.largest, len(text.encode()))
            self.newest = json.loads(text)
            self.samples += 1
            self.stopped.wait(0.1)

    def done(self) -> int:
        """How many entries have finished, as the run's progress says."""
        progress = (self.newest.get("status") or {}).get("progress", "0/0")
        return int(progress.split("/")[0])


def test_a_10000_instance_run_killed_halfway_resumes_without_rerunning_successes(
    e2e_cluster: Cluster, k8s_namespace: str, tmp_path: Path
) -> None:
    execution_log = tmp_path / "executions.log"
    env = {
        **e2e_cluster.operator.env,
        "STAGEFLOW_TASK_MODULES": "tests.fixtures.logged_tasks",
        "STAGEFLOW_TEST_EXECUTION_LOG": str(execution_log),
    }
    operator = OperatorProcess(env=env, log_path=tmp_path / "operator.log")
    e2e_cluster.operator.stop()  # this test's operator runs the logged tasks
    try:
        operator.start()
        api = e2e_cluster.start_api(k8s_namespace, task_modules="tests.fixtures.logged_tasks")
        body = {
            "dag": [
                {
                    "name": "big",
                    "task": "logged_step",
                    "params": {"run": "big", "label": "{{ item }}", "seconds": 0.005},
                    "forEach": {"count": COUNT},
                }
            ],
            "parallelism": 32,
        }
        run_id = submit(api, body)
        sampler = Sampler(k8s_namespace, run_id)
        sampler.start()
        wait_until(lambda: sampler.done() >= COUNT // 3, within=300)
        print("\n" + kubectl("get", "wfr", run_id, "-n", k8s_namespace))
        operator.kill()
        killed_at = time.time()
        stored = json.loads(kubectl("get", "wfr", run_id, "-n", k8s_namespace, "-o", "json"))
        print(json.dumps(stored["status"], indent=1)[:3000])  # what the docs show of it
        at_kill = record_from_object(stored)
        recorded = {
            task_id
            for task_id, task in at_kill.status.tasks.items()
            if "[" in task_id and task.phase is TaskPhase.SUCCEEDED
        }
        assert COUNT // 4 <= len(recorded) < COUNT, "the kill did not land halfway"

        operator.start()
        run = wait_for_run(api, run_id, timeout=600)
        sampler.stopped.set()
        sampler.join(timeout=30)
        assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"])[:2000]
        assert run["status"]["fanouts"]["big"] == {"total": COUNT, "phases": {"Succeeded": COUNT}}

        log = executions(execution_log)
        starts = Counter(int(execution.label) for execution in log if execution.event == "start")
        assert set(starts) == set(range(COUNT)), "an instance never ran"
        again = {f"big[{label}]" for label, count in starts.items() if count > 1}
        twice = sorted(again & recorded)[:10]
        assert not twice, f"recorded as succeeded, then ran again: {twice}"
        # What ran twice had started before the kill and was not yet recorded (at least
        # once: a status write comes every flush window, so up to a window's worth).
        before_kill = {f"big[{e.label}]" for e in log if e.event == "start" and e.at <= killed_at}
        assert again <= before_kill
        print(
            f"\n10,000 instances: {len(recorded)} recorded at the kill, {len(again)} re-run; "
            f"WorkflowRun at most {sampler.largest:,} bytes over {sampler.samples} samples"
        )
        assert sampler.samples >= 10
        assert sampler.largest < MIB
    finally:
        operator.stop()
        e2e_cluster.operator.start()
