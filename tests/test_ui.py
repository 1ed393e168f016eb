"""The web page under /ui in a real headless Chromium against a real `stageflow api` process.

Skipped without Debian's chromium (`apt-get install -y chromium`; .ci/run installs it).
Playwright drives it through `executable_path`: no browser is downloaded. Every request
the page makes, WebSocket included, is recorded and must stay on the API's origin.
With STAGEFLOW_SCREENSHOTS=1 the run page is saved to docs/ (a running and a failed run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.support.api import submit, wait_for_run, wait_for_task
from tests.support.live_api import running_api

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"
TIMEOUT_MS = 20_000

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with running_api(None, task_modules="tests.fixtures.extra_tasks") as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, api: httpx.Client) -> Iterator[Any]:
    """A page whose every request is checked to stay on the API's origin."""
    origin = urlsplit(str(api.base_url))
    seen: list[str] = []
    refused: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    opened.on("request", lambda request: seen.append(request.url))
    opened.on("websocket", lambda socket: seen.append(socket.url))
    opened.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    context.close()
    assert not refused, f"the page broke its own Content-Security-Policy: {refused}"
    assert seen, "the page made no request"
    for url in seen:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (origin.hostname, origin.port), url


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("STAGEFLOW_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / name), full_page=True)


def node(page: Any, task: str) -> Any:
    return page.locator(f'[data-task="{task}"]')


def gated_dag(gate: Path) -> dict[str, Any]:
    return {
        "name": "nightly-report",
        "dag": [
            {"name": "extract", "task": "echo", "params": {"rows": 3}},
            {"name": "talker", "task": "print_until", "params": {"gate": str(gate)}},
            {"name": "report", "task": "task_c", "dependsOn": ["extract", "talker"]},
        ],
    }


def test_the_list_shows_a_submitted_run(page: Any, api: httpx.Client) -> None:
    run_id = submit(api, {"name": "listed-in-ui", "dag": [{"name": "one", "task": "task_a"}]})
    wait_for_run(api, run_id)
    page.goto(f"{api.base_url}/ui/")
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    sync_api.expect(row).to_contain_text("listed-in-ui")
    sync_api.expect(row).to_contain_text("✓ Succeeded")
    sync_api.expect(row).to_contain_text("1/1")
    page.select_option("#phase", "Failed")
    sync_api.expect(row).to_have_count(0)
    page.select_option("#phase", "Succeeded")
    sync_api.expect(row).to_have_count(1)
    row.get_by_role("link").click()
    sync_api.expect(page).to_have_url(f"{api.base_url}/ui/runs/{run_id}")


def test_the_run_page_draws_every_task_and_follows_it_live(
    page: Any, api: httpx.Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = submit(api, gated_dag(gate))
    wait_for_task(api, run_id, "talker", "Running")
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    for task in ("extract", "talker", "report"):
        sync_api.expect(node(page, task)).to_have_count(1)
    sync_api.expect(node(page, "talker")).to_contain_text("▶ Running")
    sync_api.expect(node(page, "report")).to_contain_text("· Pending")
    node(page, "talker").focus()  # the keyboard opens a task's panel
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#panel-title")).to_have_text("Task talker")
    sync_api.expect(page.locator("#panel-log")).to_contain_text("first line")
    sync_api.expect(page.locator("#panel-params")).to_contain_text(str(gate))
    screenshot(page, "ui-run-running.png")
    gate.touch()
    for task in ("extract", "talker", "report"):
        sync_api.expect(node(page, task)).to_contain_text("✓ Succeeded")
        sync_api.expect(node(page, task)).to_have_class(re.compile(r"\bphase-Succeeded\b"))
    sync_api.expect(page.locator("#run-phase")).to_have_text("✓ Succeeded")
    sync_api.expect(page.locator("#panel-log")).to_contain_text("last line")
    sync_api.expect(page.locator("#run-progress")).to_have_text("3/3")


def test_cancel_from_the_page(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    run_id = submit(api, gated_dag(tmp_path / "never"))
    wait_for_task(api, run_id, "talker", "Running")
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    sync_api.expect(node(page, "talker")).to_contain_text("Running")
    page.get_by_role("button", name="Cancel run").click()
    sync_api.expect(page.locator("#run-phase")).to_have_text("⊘ Cancelled")
    sync_api.expect(node(page, "talker")).to_contain_text("Cancelled")
    sync_api.expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()
    assert api.get(f"/workflow/{run_id}").json()["status"]["phase"] == "Cancelled"
    (tmp_path / "never").touch()  # its thread ends now rather than at its own deadline


def test_a_failed_run_and_delete(page: Any, api: httpx.Client) -> None:
    failing = {
        "name": "nightly",
        "dag": [
            {"name": "extract", "task": "echo", "params": {"rows": 3}},
            {
                "name": "boom",
                "task": "fail",
                "params": {"message": "disk full"},
                "dependsOn": ["extract"],
            },
            {"name": "report", "task": "task_c", "dependsOn": ["boom"]},
        ],
    }
    run_id = submit(api, failing)
    wait_for_run(api, run_id)
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    sync_api.expect(node(page, "boom")).to_contain_text("✗ Failed")
    sync_api.expect(node(page, "report")).to_contain_text("- Skipped")
    node(page, "boom").click()
    fields = page.locator("#panel-fields")
    sync_api.expect(fields).to_contain_text("RuntimeError: disk full")
    sync_api.expect(fields).to_contain_text(re.compile(r"Duration\s*\d+\.\d s"))
    screenshot(page, "ui-run-failed.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete run").click()
    sync_api.expect(page).to_have_url(f"{api.base_url}/ui/")
    assert api.get(f"/workflow/{run_id}").status_code == 404


def test_retry_from_the_page_re_runs_only_what_failed(
    page: Any, api: httpx.Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    body = {
        "dag": [
            {"name": "extract", "task": "echo", "params": {"rows": 3}},
            {
                "name": "talker",
                "task": "print_until",
                "params": {"gate": str(gate), "within": 0},
                "dependsOn": ["extract"],
            },
            {"name": "report", "task": "task_c", "dependsOn": ["talker"]},
        ]
    }
    run_id = submit(api, body)
    before = wait_for_run(api, run_id)
    assert before["status"]["phase"] == "Failed"
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    retry = page.get_by_role("button", name="Retry from the failure")
    sync_api.expect(retry).to_be_visible()
    gate.touch()  # what made it fail is fixed
    retry.click()
    sync_api.expect(page.locator("#run-phase")).to_have_text("✓ Succeeded")
    sync_api.expect(node(page, "report")).to_contain_text("Succeeded")
    sync_api.expect(retry).to_be_hidden()
    after = api.get(f"/workflow/{run_id}").json()["status"]
    assert after["tasks"]["extract"] == before["status"]["tasks"]["extract"]
    assert after["tasks"]["talker"]["attempts"] == 2
    assert after["retries"][0]["reset"] == ["talker", "report"]


def test_approve_from_the_page_with_outputs(page: Any, api: httpx.Client) -> None:
    body = {
        "dag": [
            {
                "name": "approve-deploy",
                "approval": {
                    "inputs": {
                        "type": "object",
                        "properties": {"version": {"type": "string"}},
                        "required": ["version"],
                    }
                },
            },
            {
                "name": "deploy",
                "task": "echo",
                "params": {"version": "{{ tasks.approve-deploy.outputs.version }}"},
            },
        ]
    }
    run_id = submit(api, body)
    wait_for_task(api, run_id, "approve-deploy", "Waiting")
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    sync_api.expect(node(page, "approve-deploy")).to_contain_text("⏸ Waiting")
    node(page, "approve-deploy").click()
    page.locator("#decision-outputs").fill('{"version": 3}')
    page.get_by_role("button", name="Approve", exact=True).click()
    sync_api.expect(page.locator("#error")).to_contain_text("3 is not of type 'string'")
    page.locator("#decision-comment").fill("ship it")
    page.locator("#decision-outputs").fill('{"version": "1.4.2"}')
    page.get_by_role("button", name="Approve", exact=True).click()
    sync_api.expect(page.locator("#run-phase")).to_have_text("✓ Succeeded")
    sync_api.expect(page.locator("#decision")).to_be_hidden()
    run = api.get(f"/workflow/{run_id}").json()
    assert run["status"]["tasks"]["deploy"]["outputs"] == {"version": "1.4.2"}
    assert run["status"]["tasks"]["approve-deploy"]["decision"]["comment"] == "ship it"


def test_the_nightly_example_draws_the_edge_its_reference_makes(
    page: Any, api: httpx.Client
) -> None:
    """`check` reads `extract`'s outputs: the engine waits for it, and so does the picture
    (a dashed edge, which the legend names), beside the solid `dependsOn` edges."""
    body = yaml.safe_load((EXAMPLES / "nightly.yaml").read_text())
    body["dag"][1]["params"]["seconds"] = 0
    run_id = submit(api, body)
    wait_for_run(api, run_id)
    page.goto(f"{api.base_url}/ui/runs/{run_id}")
    reference = page.locator('path.edge[data-from="extract"][data-to="check"]')
    sync_api.expect(reference).to_have_count(1)
    sync_api.expect(reference).to_have_attribute("data-kind", "data")
    assert reference.evaluate("e => getComputedStyle(e).strokeDasharray") not in ("", "none")
    order = page.locator('path.edge[data-from="wait"][data-to="check"]')
    sync_api.expect(order).to_have_attribute("data-kind", "order")
    assert order.evaluate("e => getComputedStyle(e).strokeDasharray") == "none"
    sync_api.expect(page.locator("path.edge")).to_have_count(3)
    sync_api.expect(page.locator("#graph-legend")).to_contain_text("reads its outputs")
    sync_api.expect(node(page, "check")).to_contain_text("✓ Succeeded")


def test_another_site_cannot_frame_the_run_page(browser: Any, api: httpx.Client) -> None:
    """Clickjacking: the run page's buttons inside another site's frame. The answer's
    `frame-ancestors 'none'` makes the browser refuse to draw it."""
    run_id = submit(api, {"dag": [{"name": "one", "task": "task_a"}]})
    context = browser.new_context()
    try:
        framing = context.new_page()
        framing.set_default_timeout(TIMEOUT_MS)
        with framing.expect_console_message(
            predicate=lambda message: "frame-ancestors" in message.text
        ) as refusal:
            framing.set_content(f'<iframe src="{api.base_url}/ui/runs/{run_id}"></iframe>')
        assert "frame-ancestors 'none'" in refusal.value.text
        (frame,) = [f for f in framing.frames if f is not framing.main_frame]
        assert frame.locator("#cancel").count() == 0
    finally:
        context.close()


def test_docs_work_offline(page: Any, api: httpx.Client) -> None:
    page.goto(f"{api.base_url}/docs")
    sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text("stageflow")
    sync_api.expect(page.locator("#operations-workflows-submitWorkflow")).to_be_visible()
