"""Faults under load, on a real control plane: nothing lost, nothing run twice after its
success was recorded, retries that keep their backoff, no hang, no 500.

Three batches of runs, each under its own fault:
1. the operator SIGKILLed three times while runs are submitted and run;
2. Redis SIGKILLed (and started again, empty) while runs are submitted and run;
3. the kube-apiserver SIGKILLed for a while under load, the operator alive throughout.
Every task writes its own execution log (tests/fixtures/chaos_tasks.py), so the test
knows which attempts really ran, and checks them against what the WorkflowRuns said
and when (`Watcher`), while `Poller` reads runs through both API replicas all along.

What "exactly" can mean under at-least-once (design §5): an attempt whose start or end
had not reached the WorkflowRun when its operator was killed runs again. So after a
kill the test allows re-runs of unrecorded work and checks what must hold: no attempt
starts after the task's success was in the WorkflowRun; the attempt count never
exceeds the attempts that started; a retry never starts before its backoff is over;
and with the operator alive (batch 3, through an apiserver outage) every attempt ran
exactly once and the counts are exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest

from tests.support.chaos import Chaos, Poller, Watcher, body, workflow_runs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

FINISHED = {"Succeeded", "Failed", "Cancelled"}


@dataclass(frozen=True)
class Submitted:
    run_id: str
    key: str
    kind: str  # "plain", "flaky" or "doomed"
    batch: int

    @property
    def expected(self) -> str:
        return "Failed" if self.kind == "doomed" else "Succeeded"


def kind_of(index: int) -> str:
    if index % 20 == 7:
        return "doomed"
    if index % 10 == 3:
        return "flaky"
    return "plain"


def submit(api: httpx.Client, payload: dict[str, Any]) -> str:
    """POST until accepted: a 503 (the apiserver away) is a fair answer, to be retried."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = api.post("/workflow", json=payload)
        except httpx.TimeoutException:
            response = None
        if response is not None and response.status_code == 202:
            run_id: str = response.json()["run_id"]
            return run_id
        assert response is None or response.status_code == 503, response.text
        assert time.monotonic() < deadline, "the API refused a run for a minute"
        time.sleep(0.2)


class Batch:
    """Submits `count` runs from a thread pool, alternating replicas; counts as it goes."""

    def __init__(self, chaos: Chaos, *, batch: int, count: int, seconds: float) -> None:
        self.submitted: list[Submitted] = []
        self._lock = threading.Lock()
        self._chaos = chaos
        self._batch = batch
        self._seconds = seconds
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"batch{batch}")
        self._futures = [self._pool.submit(self._one, index) for index in range(count)]

    def _one(self, index: int) -> None:
        kind = kind_of(index)
        key = f"b{self._batch}-{index:03d}"
        api = self._chaos.apis[index % len(self._chaos.apis)].client
        payload = body(key, seconds=self._seconds, flaky=kind == "flaky", doomed=kind == "doomed")
        run_id = submit(api, payload)
        with self._lock:
            self.submitted.append(Submitted(run_id, key, kind, self._batch))

    def count(self) -> int:
        with self._lock:
            return len(self.submitted)

    def wait(self) -> list[Submitted]:
        for future in self._futures:
            future.result(timeout=300)
        self._pool.shutdown()
        return self.submitted


def until(check: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f}s"
        time.sleep(0.1)


def arrived(batch: Batch, count: int) -> bool:
    return batch.count() >= count


def started(chaos: Chaos, runs: list[Submitted]) -> int:
    """How many of the runs have a task that began (from the tasks' own logs)."""
    return sum(1 for run in runs if chaos.attempts_logged(f"{run.key}.a"))


def test_nothing_lost_nothing_run_twice_no_hang_no_500(chaos: Chaos) -> None:
    watcher = Watcher(chaos.plane.kubeconfig)
    watcher.start()
    run_ids: list[str] = []
    poller = Poller([api.client for api in chaos.apis], run_ids)
    poller.start()
    try:
        # 1. The operator SIGKILLed three times while 240 runs arrive and run.
        first = Batch(chaos, batch=1, count=240, seconds=0.3)
        for threshold in (40, 110, 180):
            until(partial(arrived, first, threshold), within=120, what=f"{threshold} runs")
            chaos.operator.kill()
            chaos.operator.start()
        runs = first.wait()
        run_ids.extend(run.run_id for run in runs)

        # 2. Redis SIGKILLed, and back empty, while 60 more arrive and run.
        second = Batch(chaos, batch=2, count=60, seconds=0.3)
        until(lambda: second.count() >= 20, within=120, what="20 runs of batch 2")
        chaos.kill_redis()
        runs += second.wait()
        run_ids.extend(run.run_id for run in runs[-60:])

        # 3. The apiserver SIGKILLed for 8 s while 40 runs are under way; the operator lives.
        third = Batch(chaos, batch=3, count=40, seconds=2.0)
        batch3 = third.wait()
        run_ids.extend(run.run_id for run in batch3)
        until(lambda: started(chaos, batch3) >= 30, within=120, what="batch 3 under way")
        argv = chaos.plane.kill_apiserver()
        time.sleep(8)  # the outage itself: nothing is asserted about this moment
        chaos.plane.start_apiserver(argv)
        runs += batch3

        def all_finished() -> bool:
            objects = workflow_runs(chaos.plane)
            return all(
                objects.get(run.run_id, {}).get("status", {}).get("phase") in FINISHED
                for run in runs
            )

        until(all_finished, within=300, what="every run finished")
    finally:
        poller.stop()
        watcher.stop()

    objects = workflow_runs(chaos.plane)
    # Nothing lost: every accepted run is a WorkflowRun, in the phase its tasks call for.
    assert {run.run_id for run in runs} <= set(objects)
    wrong_phase = {
        run.key: objects[run.run_id]["status"]["phase"]
        for run in runs
        if objects[run.run_id]["status"]["phase"] != run.expected
    }
    assert wrong_phase == {}

    problems: list[str] = []
    reruns = 0
    for run in runs:
        tasks = objects[run.run_id]["status"]["tasks"]
        for task_id in ("a", "b", "c"):
            log = chaos.attempts_logged(f"{run.key}.{task_id}")
            starts = [at for what, at in log if what == "start"]
            ends = [at for what, at in log if what == "end"]
            attempts = tasks[task_id]["attempts"]
            success = watcher.succeeded_at.get((run.run_id, task_id))
            if success is not None and any(at > success for at in starts):
                problems.append(f"{run.key}.{task_id} started after its success was recorded")
            if not starts or not 1 <= attempts <= len(starts):
                problems.append(f"{run.key}.{task_id}: {attempts} attempts, {len(starts)} ran")
            # Once a retry's due time was in the WorkflowRun, nothing starts before it, even
            # across a kill (the backoff is waited out, not skipped).
            for due, seen in watcher.retries_due.get((run.run_id, task_id), {}).items():
                early = [at for at in starts if seen <= at < due - 0.05]
                if early:
                    problems.append(f"{run.key}.{task_id} started {due - early[0]:.2f}s early")
            if run.batch == 3:  # the operator never died: each attempt ran exactly once
                expected_runs = (
                    {"plain": 1, "flaky": 2, "doomed": 2}[run.kind] if task_id == "c" else 1
                )
                if not (len(starts) == len(ends) == attempts == expected_runs):
                    problems.append(
                        f"{run.key}.{task_id} (operator alive): {len(starts)} started, "
                        f"{attempts} counted, {expected_runs} expected"
                    )
            reruns += max(0, len(starts) - attempts)
    assert problems == []

    # Every API replica serves what the WorkflowRuns say (the mirror caught up after Redis).
    def replicas_agree() -> bool:
        for run in runs:
            expected = {
                task_id: entry["phase"]
                for task_id, entry in objects[run.run_id]["status"]["tasks"].items()
            }
            for api in chaos.apis:
                if api.client.get(f"/workflow/{run.run_id}/status").json() != expected:
                    return False
        return True

    until(replicas_agree, within=60, what="both replicas equal the WorkflowRuns")

    # The API answered 2xx, 4xx or 503 only: never a 500, never a hang.
    assert poller.bad() == {}, poller.worst
    assert sum(poller.answers.values()) > 100, poller.answers  # it really polled throughout
    print(
        f"\nchaos: {len(runs)} runs; operator started {chaos.operator.starts} times; "
        f"{reruns} attempts re-ran unrecorded work after a kill; watch broke "
        f"{watcher.breaks} times; API answers {dict(poller.answers)}"
    )
