"""Templates and schedules on the web page, in the headless Chromium of tests/test_ui.py
(its `browser`, and its `page` that checks every request stays on the API's origin and
the page keeps its Content-Security-Policy), against a `stageflow api` process of its own
(local backend, in memory) whose scheduler looks at runs going every 0.2 s.

A schedule here fires every 2 s while its test runs, and is deleted at the end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import test_ui as ui
from tests.support.api import submit, wait_for_run
from tests.support.live_api import running_api
from tests.support.polling import wait_until

sync_api = ui.sync_api
expect = sync_api.expect
browser = ui.browser
page = ui.page  # it asks for `api`: this module's


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with running_api(
        None, task_modules="tests.fixtures.extra_tasks", schedule_poll_seconds="0.2"
    ) as client:
        yield client


def stamp(iso: str) -> str:
    """As the page writes a time: 2026-03-01T02:00:00.000000Z -> 2026-03-01 02:00:00Z."""
    return re.sub(r"\.\d+", "", iso.replace("T", " "))


def test_templates_list_their_revisions_and_a_run_links_to_its_revision(
    page: Any, api: httpx.Client
) -> None:
    first = {
        "params": {"rows": {"default": 3, "description": "How many rows"}},
        "dag": [{"name": "task_a", "task": "task_a"}],
    }
    second = {
        "params": {"rows": {"default": 5}, "region": {"description": "Where"}},
        "dag": [{"name": "task_a", "task": "task_a"}],
    }
    assert api.put("/templates/report-ui", json=first).status_code == 201
    assert api.put("/templates/report-ui", json=second).json()["revision"] == 2
    page.goto(f"{api.base_url}/ui/templates")
    row = page.locator('tr[data-template="report-ui"]')
    expect(row.locator("td.revision")).to_have_text("2")
    expect(row.locator("td.revisions a")).to_have_text(["1", "2"])
    expect(row).to_contain_text("region (required)")
    row.get_by_role("link", name="report-ui revision 1").click()
    expect(page).to_have_url(f"{api.base_url}/ui/templates/report-ui/revisions/1")
    expect(page.locator("#revision-title")).to_have_text("Template report-ui · revision 1")
    expect(page.locator("#revision-fields")).to_contain_text("1 (current: 2)")
    expect(page.locator("#revision-spec")).to_contain_text('"default": 3')
    expect(page.locator("#revision-spec")).not_to_contain_text("region")
    expect(row.get_by_role("link", name="report-ui revision 1")).to_have_attribute(
        "aria-current", "page"
    )

    run_id = submit(api, {"templateRef": {"name": "report-ui", "revision": 1}})
    wait_for_run(api, run_id)
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    origin = page.locator("#origin-template")
    expect(origin).to_have_text("from template report-ui revision 1")
    expect(page.locator("#origin-schedule")).to_have_count(0)
    origin.get_by_role("link").click()
    expect(page).to_have_url(f"{api.base_url}/ui/templates/report-ui/revisions/1")
    expect(page.locator("#revision-spec")).to_contain_text('"default": 3')

    page.goto(f"{api.base_url}/ui/templates/report-ui/revisions/9")
    expect(page.locator("#revision-error")).to_contain_text("HTTP 404")


def test_a_schedule_its_runs_pause_and_resume_and_a_run_it_started(
    page: Any, api: httpx.Client
) -> None:
    body = {
        "schedule": "@every 2s",
        "workflowSpec": {"name": "ticker", "dag": [{"name": "task_a", "task": "task_a"}]},
    }
    assert api.put("/schedules/ui-ticker", json=body).status_code == 201
    try:
        page.goto(f"{api.base_url}/ui/schedules")
        row = page.locator('tr[data-schedule="ui-ticker"]')
        expect(row.locator("td.when")).to_have_text("@every 2s · UTC")
        expect(row).to_contain_text("inline workflow ticker")
        expect(row.locator("td.next")).to_have_text(
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \((in \d+s|\d+s ago)\)$")
        )
        expect(row.locator("td.state")).to_contain_text("Active")
        # A run the schedule started appears among its runs, as a link to its page.
        started = row.locator("td.runs-of a").first
        expect(started).to_be_visible()
        run_id = (started.get_attribute("href") or "").removeprefix("/ui/runs/")
        run = api.get(f"/workflow/{run_id}").json()
        assert run["origin"]["schedule"] == "ui-ticker"
        expect(row.locator("td.last")).to_have_text(re.compile(r"\d\d:\d\d:\d\dZ"))
        expect(row.locator("td.last-run")).to_have_text("✓ Succeeded")

        row.get_by_role("button", name="Pause ui-ticker").click()
        wait_until(lambda: api.get("/schedules/ui-ticker").json()["spec"]["suspend"] is True)
        expect(row.locator("td.state")).to_contain_text("Suspended")
        expect(row.locator("td.next")).to_have_text("none while suspended")
        resume = row.get_by_role("button", name="Resume ui-ticker")
        expect(resume).to_be_focused()  # the row was redrawn; the focus stayed on its button

        # The run's page says which schedule started it and for which slot.
        page.goto(f"{api.base_url}/ui/runs/{run_id}")
        origin = page.locator("#origin-schedule")
        expect(origin).to_have_text(
            f"scheduled by ui-ticker for {stamp(run['origin']['scheduled_time'])}"
        )
        expect(page.locator("#origin-template")).to_have_count(0)
        origin.get_by_role("link", name="ui-ticker").click()
        expect(page).to_have_url(f"{api.base_url}/ui/schedules/ui-ticker")
        expect(page.locator("#detail-title")).to_have_text("Schedule ui-ticker")
        expect(page.locator("#detail-fields")).to_contain_text("Suspended")
        expect(page.locator("#detail-spec")).to_contain_text('"task": "task_a"')
        expect(row).to_have_attribute("aria-current", "true")

        row.get_by_role("button", name="Resume ui-ticker").click()
        wait_until(lambda: api.get("/schedules/ui-ticker").json()["spec"]["suspend"] is False)
        expect(row.locator("td.state")).to_contain_text("Active")
        expect(page.locator("#detail-fields")).to_contain_text("Active")
    finally:
        api.delete("/schedules/ui-ticker")
