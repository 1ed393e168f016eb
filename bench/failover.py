"""Failover time of two operators with leader election, on a real apiserver (printed, never
asserted): the leader SIGKILLed (the standby takes over when the Lease expires) and the
leader stopped with SIGTERM (it releases the Lease: the standby takes over at its next try).

The baseline, measured in the same run, is what the settings promise: the Lease duration
for a crash, one retry period for a graceful stop. Needs KUBECONFIG (../shared/k8s/up.sh):

    . /tmp/stageflow-k8s/env && flock /tmp/stageflow-timing.lock .venv/bin/python -m bench.failover
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.failover import Candidate, candidates, wait_for_leader


def kubectl(*args: str) -> None:
    subprocess.run(["kubectl", *args], check=True, capture_output=True, timeout=60)


def standing_by(candidate: Candidate) -> None:
    deadline = time.monotonic() + 60
    while "standing by" not in candidate.log():
        if time.monotonic() > deadline:
            raise RuntimeError(candidate.log()[-2000:])
        time.sleep(0.02)


def handover(leader: Candidate, standby: Candidate, how: signal.Signals) -> float:
    """Seconds from the signal to the standby's first line as the leader."""
    standing_by(standby)
    started = time.monotonic()
    leader.signal(how)
    wait_for_leader([standby], within=120)
    elapsed = time.monotonic() - started
    leader.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lease", type=int, default=15)
    parser.add_argument("--renew", type=float, default=10)
    parser.add_argument("--retry", type=float, default=2)
    options = parser.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-failover-bench-"))
    kubectl("create", "namespace", namespace)
    group = candidates(
        namespace=namespace,
        workdir=workdir,
        kubeconfig=kubeconfig,
        lease_seconds=options.lease,
        renew_seconds=options.renew,
        retry_seconds=options.retry,
        execution_log=workdir / "executions.log",
        count=2 * options.rounds + 1,
    )
    crash: list[float] = []
    graceful: list[float] = []
    try:
        leader = group[0]
        leader.start()
        wait_for_leader([leader], within=120)
        for index in range(options.rounds):
            standby = group[2 * index + 1]
            standby.start()
            crash.append(handover(leader, standby, signal.SIGKILL))
            leader = standby
            standby = group[2 * index + 2]
            standby.start()
            graceful.append(handover(leader, standby, signal.SIGTERM))
            leader = standby
    finally:
        for candidate in group:
            candidate.stop()
        kubectl("delete", "namespace", namespace, "--wait=false")
    print(f"lease {options.lease}s, renew deadline {options.renew}s, retry {options.retry}s")
    for name, values, baseline in (
        ("leader SIGKILLed -> standby leads", crash, float(options.lease)),
        ("leader SIGTERMed -> standby leads", graceful, options.retry),
    ):
        median = statistics.median(values)
        print(
            f"{name}: median {median:.2f}s over {len(values)} "
            f"({', '.join(f'{v:.2f}' for v in values)}); "
            f"baseline {baseline:.2f}s, ratio {median / baseline:.2f}"
        )
    print(f"logs in {workdir}")


if __name__ == "__main__":
    main()
