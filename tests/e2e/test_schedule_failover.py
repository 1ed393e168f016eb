"""A schedule under operator failover on the real apiserver: two operators with leader
election, a schedule firing every 2 s, the leader SIGKILLed three times. From the runs that
exist: every slot from the first to the last handled fired exactly once, none twice, none
lost (the slots that passed while no operator led fire on catch-up, in order)."""

from __future__ import annotations

import json
import signal
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from stageflow.models.status import format_timestamp, parse_timestamp
from tests.support.cluster import Cluster, kubectl
from tests.support.failover import candidates, wait_for_leader
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

EVERY = 2
KILLS = 3


def test_each_slot_fires_once_across_leader_kills(e2e_cluster: Cluster, k8s_namespace: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-schedule-failover-"))
    e2e_cluster.operator.stop()
    group = candidates(
        namespace=k8s_namespace,
        workdir=workdir,
        kubeconfig=e2e_cluster.kubeconfig,
        lease_seconds=6,
        renew_seconds=4.0,
        retry_seconds=0.5,
        execution_log=workdir / "executions.log",
        count=KILLS + 2,
        extra_env={"STAGEFLOW_SCHEDULE_POLL_SECONDS": "0.5"},
    )
    try:
        api = e2e_cluster.start_api(k8s_namespace)
        spec = {
            "schedule": f"@every {EVERY}s",
            "overlapPolicy": "AllowAll",  # every slot fires, whatever else is going
            "catchupWindowSeconds": 600,
            "successfulRunsHistoryLimit": 1000,
            "workflowSpec": {"dag": [{"name": "a", "task": "task_a"}]},
        }
        assert api.put("/schedules/beat", json=spec).status_code == 201
        group[0].start()
        group[1].start()
        running = [group[0], group[1]]
        for kill in range(KILLS):
            leader = wait_for_leader(running)
            fired = api.get("/schedules/beat").json()["status"]["fired"]
            wait_until(
                lambda fired=fired: (
                    api.get("/schedules/beat").json()["status"]["fired"] >= fired + 2
                ),
                within=60,
            )
            leader.signal(signal.SIGKILL)
            leader.wait()
            running.remove(leader)
            fresh = group[2 + kill]
            fresh.start()
            running.append(fresh)
        wait_for_leader(running)
        after = api.get("/schedules/beat").json()["status"]["fired"]
        wait_until(
            lambda: api.get("/schedules/beat").json()["status"]["fired"] >= after + 2, within=60
        )
        api.post("/schedules/beat/pause")
        wait_until(lambda: not api.get("/schedules/beat").json()["status"]["active"], within=60)
        status = api.get("/schedules/beat").json()["status"]

        listing = json.loads(
            kubectl(
                "get", "wfr", "-n", k8s_namespace, "-l", "stageflow.dev/schedule=beat", "-o", "json"
            )
        )["items"]
        slots = [
            json.loads(item["metadata"]["annotations"]["stageflow.dev/origin"])["scheduled_time"]
            for item in listing
        ]
        assert len(slots) == len(set(slots)), "a slot fired twice"
        assert len(slots) == status["fired"]
        first = parse_timestamp(min(slots))
        last = parse_timestamp(status["lastScheduledTime"])
        assert first is not None
        assert last is not None
        expected = []
        moment: datetime = first
        while moment <= last:
            expected.append(format_timestamp(moment))
            moment += timedelta(seconds=EVERY)
        missing = sorted(set(expected) - set(slots))
        assert not missing, f"slots that never fired: {missing}"
        assert sorted(slots) == expected
        assert status["missed"] == 0
        assert len(expected) >= 2 * (KILLS + 1)
        for item in listing:
            assert (item.get("status") or {}).get("phase") == "Succeeded", item["metadata"]["name"]
    finally:
        for candidate in group:
            candidate.stop()
        e2e_cluster.operator.start()
        print(f"\nschedule failover logs in {workdir}")
