"""Schedules on the local backend with several API replicas on one Redis: the replica that
holds the scheduler lease fires; when it is SIGKILLed another takes over, and each slot
still fires exactly once (from the runs that exist)."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta

from stageflow.models.status import format_timestamp, parse_timestamp
from tests.support.live_api import start_api, stop_api
from tests.support.polling import wait_until

SETTINGS = {"schedule_poll_seconds": "0.3"}


def test_each_slot_fires_once_across_replicas_and_a_killed_one(redis_url: str) -> None:
    started = [start_api(redis_url, **SETTINGS), start_api(redis_url, **SETTINGS)]
    try:
        first = started[0][1]
        spec = {
            "schedule": "@every 1s",
            "overlapPolicy": "AllowAll",
            "successfulRunsHistoryLimit": 1000,
            "failedRunsHistoryLimit": 1000,
            "workflowSpec": {"dag": [{"name": "a", "task": "task_a"}]},
        }
        assert first.put("/schedules/beat", json=spec).status_code == 201

        def fired() -> int:
            return int(started[-1][1].get("/schedules/beat").json()["status"]["fired"])

        wait_until(lambda: fired() >= 5)
        for process, _ in started[:2]:  # both, one after the other: the holder is one of them
            process.send_signal(signal.SIGKILL)
            process.wait()
            started.append(start_api(redis_url, **SETTINGS))
            now = fired()
            wait_until(lambda now=now: fired() >= now + 4)
        last_client = started[-1][1]
        last_client.post("/schedules/beat/pause")
        status = last_client.get("/schedules/beat").json()["status"]

        slots: list[str] = []
        for item in last_client.get("/workflows", params={"limit": 500}).json()["items"]:
            run = last_client.get(f"/workflow/{item['run_id']}").json()
            if (run.get("origin") or {}).get("schedule") == "beat":
                slots.append(run["origin"]["scheduled_time"])
        assert len(slots) == len(set(slots)), "a slot fired twice"
        start = parse_timestamp(min(slots))
        end = parse_timestamp(status["lastScheduledTime"])
        assert start is not None
        assert end is not None
        expected: list[str] = []
        moment: datetime = start
        while moment <= end:
            expected.append(format_timestamp(moment))
            moment += timedelta(seconds=1)
        assert sorted(slots) == expected, sorted(set(expected) - set(slots))
        assert status["fired"] == len(slots)
    finally:
        for process, client in started:
            if process.poll() is None:
                stop_api(process, client)
            else:
                client.close()
