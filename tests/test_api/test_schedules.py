"""Schedules through the HTTP API on the local backend (memory and Redis): validation,
firing on the clock, pause and resume, backfill. The scheduler's logic on a virtual clock
is tests/test_engine/test_schedules.py and test_scheduler.py; the kubernetes backend's is
tests/e2e/test_schedules_e2e.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from tests.support.api import finish_task_threads
from tests.support.polling import wait_until

INLINE: dict[str, Any] = {
    "schedule": "@every 1s",
    "workflowSpec": {
        "dag": [{"name": "stamp", "task": "echo", "params": {"at": "{{ params.scheduledTime }}"}}]
    },
}


@pytest.fixture(params=["memory", "redis"])
def client(request: pytest.FixtureRequest, tasks: TaskRegistry) -> Iterator[TestClient]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = ApiSettings(
        redis_url=redis_url, status_flush_seconds=0.01, schedule_poll_seconds=0.2
    )
    before = set(threading.enumerate())
    with TestClient(create_app(settings, tasks=tasks)) as test_client:
        yield test_client
    finish_task_threads(set(threading.enumerate()) - before)


def _runs(client: TestClient, schedule: str) -> list[dict[str, Any]]:
    found = []
    for item in client.get("/workflows", params={"limit": 500}).json()["items"]:
        run = client.get(f"/workflow/{item['run_id']}").json()
        if (run.get("origin") or {}).get("schedule") == schedule:
            found.append(run)
    return found


def test_a_schedule_fires_each_slot_once_with_its_scheduled_time(client: TestClient) -> None:
    created = client.put("/schedules/every-second", json=INLINE)
    assert created.status_code == 201, created.text
    wait_until(lambda: client.get("/schedules/every-second").json()["status"]["fired"] >= 3)
    status = client.get("/schedules/every-second").json()["status"]
    assert status["nextScheduledTime"] > status["lastScheduledTime"]
    runs = _runs(client, "every-second")
    slots = [run["origin"]["scheduled_time"] for run in runs]
    assert len(slots) == len(set(slots)) >= 3  # one run per slot
    for run in runs:
        assert run["spec"]["params"]["scheduledTime"] == run["origin"]["scheduled_time"]
        assert run["name"] == "every-second"
    finished = [run for run in runs if run["status"]["phase"] == "Succeeded"]
    for run in finished:
        assert run["status"]["tasks"]["stamp"]["outputs"] == {"at": run["origin"]["scheduled_time"]}
    replaced = client.put("/schedules/every-second", json={**INLINE, "suspend": True})
    assert replaced.status_code == 200
    assert replaced.json()["status"]["fired"] >= 3  # the status stays


def test_pause_stops_firing_and_resume_goes_on_from_now(client: TestClient) -> None:
    client.put("/schedules/ticker", json=INLINE)
    wait_until(lambda: client.get("/schedules/ticker").json()["status"]["fired"] >= 1)
    paused = client.post("/schedules/ticker/pause")
    assert paused.status_code == 200
    assert paused.json()["spec"]["suspend"] is True
    wait_until(lambda: client.get("/schedules/ticker").json()["status"]["missed"] >= 2)
    fired = client.get("/schedules/ticker").json()["status"]["fired"]
    missed = client.get("/schedules/ticker").json()["status"]["missed"]
    wait_until(lambda: client.get("/schedules/ticker").json()["status"]["missed"] > missed)
    assert client.get("/schedules/ticker").json()["status"]["fired"] == fired
    resumed = client.post("/schedules/ticker/resume")
    assert resumed.json()["spec"]["suspend"] is False
    wait_until(lambda: client.get("/schedules/ticker").json()["status"]["fired"] > fired)


def test_a_schedule_runs_a_template_by_reference(client: TestClient) -> None:
    template = {
        "params": {"region": {"default": "eu"}},
        "dag": [
            {
                "name": "report",
                "task": "echo",
                "params": {"region": "{{ params.region }}", "at": "{{ params.scheduledTime }}"},
            }
        ],
    }
    assert client.put("/templates/report", json=template).status_code == 201
    spec = {
        "schedule": ["@every 1s"],
        "templateRef": {"name": "report"},
        "params": {"region": "us"},
    }
    assert client.put("/schedules/reports", json=spec).status_code == 201
    wait_until(lambda: any(r["status"]["phase"] == "Succeeded" for r in _runs(client, "reports")))
    run = next(r for r in _runs(client, "reports") if r["status"]["phase"] == "Succeeded")
    assert run["origin"]["template"] == "report"
    assert run["origin"]["template_revision"] == 1
    assert run["status"]["tasks"]["report"]["outputs"]["region"] == "us"


def test_backfill_fires_a_past_range_once(client: TestClient) -> None:
    spec = {
        **INLINE,
        "schedule": "0 * * * *",
        "overlapPolicy": "AllowAll",
        "successfulRunsHistoryLimit": 10,
    }
    client.put("/schedules/hourly", json=spec)
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T05:00:00Z"}
    dry = client.post("/schedules/hourly/backfill", json={**window, "dryRun": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["slots"] == [f"2026-01-01T0{hour}:00:00.000000Z" for hour in range(5)]
    assert dry.json()["queued"] == 0
    assert _runs(client, "hourly") == []
    done = client.post("/schedules/hourly/backfill", json={**window, "overlapPolicy": "AllowAll"})
    assert done.json()["queued"] == 5
    wait_until(lambda: len(_runs(client, "hourly")) == 5)
    runs = _runs(client, "hourly")
    assert sorted(run["origin"]["scheduled_time"] for run in runs) == dry.json()["slots"]
    assert all(run["origin"]["backfill"] for run in runs)
    again = client.post("/schedules/hourly/backfill", json={**window, "overlapPolicy": "AllowAll"})
    assert again.json()["queued"] == 0  # each slot fires once, whoever asks
    wait_until(lambda: not client.get("/schedules/hourly").json()["status"]["pending"])
    assert len(_runs(client, "hourly")) == 5


def test_finished_runs_past_the_history_limits_are_deleted(client: TestClient) -> None:
    spec = {**INLINE, "schedule": "0 * * * *", "successfulRunsHistoryLimit": 2}
    client.put("/schedules/kept", json=spec)
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T06:00:00Z"}
    client.post("/schedules/kept/backfill", json={**window, "overlapPolicy": "AllowAll"})
    wait_until(lambda: client.get("/schedules/kept").json()["status"]["fired"] == 6)
    wait_until(lambda: len(client.get("/schedules/kept").json()["status"]["recent"]) == 2)
    wait_until(lambda: len(_runs(client, "kept")) == 2)
    recent = client.get("/schedules/kept").json()["status"]["recent"]
    kept = sorted(run["origin"]["scheduled_time"] for run in _runs(client, "kept"))
    assert kept == ["2026-01-01T04:00:00.000000Z", "2026-01-01T05:00:00.000000Z"]
    assert sorted(run["scheduledTime"] for run in recent) == kept  # the newest two


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ({**INLINE, "schedule": "61 * * * *"}, "schedule[0] '61 * * * *'"),
        ({**INLINE, "schedule": "* * * * * *"}, "schedule[0]"),
        ({**INLINE, "schedule": "@sometimes"}, "@sometimes"),
        ({**INLINE, "timezone": "Mars/Base"}, "Unknown time zone: Mars/Base"),
        (
            {**INLINE, "workflowSpec": {"dag": [{"name": "x", "task": "nope"}]}},
            "Unknown task: nope",
        ),
        (
            {"schedule": "@daily", "templateRef": {"name": "missing"}},
            "Unknown template: Template missing",
        ),
    ],
)
def test_bad_schedules_are_400s_and_nothing_is_stored(
    client: TestClient, spec: dict[str, Any], detail: str
) -> None:
    answer = client.put("/schedules/bad", json=spec)
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]
    assert client.get("/schedules/bad").status_code == 404
    assert client.get("/schedules").json()["items"] == []


def test_bad_backfills_are_400s(client: TestClient) -> None:
    client.put("/schedules/minutely", json={**INLINE, "schedule": "* * * * *", "suspend": True})
    reversed_range = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    answer = client.post("/schedules/minutely/backfill", json=reversed_range)
    assert answer.status_code == 400
    assert "reversed" in answer.json()["detail"]
    a_day = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    answer = client.post("/schedules/minutely/backfill", json=a_day)
    assert answer.status_code == 400
    assert "1000" in answer.json()["detail"]
    assert client.get("/schedules/minutely").json()["status"]["pending"] == []
    missing = client.post("/schedules/nope/backfill", json=a_day)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Schedule nope not found"}


def test_deleting_a_schedule_keeps_its_runs(client: TestClient) -> None:
    client.put("/schedules/short", json=INLINE)
    wait_until(lambda: client.get("/schedules/short").json()["status"]["fired"] >= 1)
    assert client.delete("/schedules/short").status_code == 204
    assert client.get("/schedules/short").status_code == 404
    assert _runs(client, "short")
    assert client.delete("/schedules/short").status_code == 404


def test_review_findings_hold(client: TestClient) -> None:
    """A Job task is refused when the schedule is saved (the local backend runs none), a
    backfill of the future is refused, the host's own zone is not a zone, and every run a
    schedule starts carries its label."""
    job = {**INLINE, "workflowSpec": {"dag": [{"name": "j", "task": "echo", "executor": "job"}]}}
    answer = client.put("/schedules/jobs", json=job)
    assert answer.status_code == 400
    assert "needs the kubernetes backend" in answer.json()["detail"]
    answer = client.put("/schedules/local", json={**INLINE, "timezone": "localtime"})
    assert answer.status_code == 400
    client.put("/schedules/soon", json={**INLINE, "schedule": "0 * * * *", "suspend": True})
    future = {"start": "2026-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z"}
    answer = client.post("/schedules/soon/backfill", json={**future, "dryRun": True})
    assert answer.status_code == 400
    client.put("/schedules/labelled", json=INLINE)
    wait_until(lambda: bool(_runs(client, "labelled")))
    assert _runs(client, "labelled")[0]["labels"]["stageflow.dev/schedule"] == "labelled"
