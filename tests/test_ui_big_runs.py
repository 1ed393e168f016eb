"""A run of 10,000 forEach instances on the web page, in the headless Chromium of
tests/test_ui.py (its `browser`, and its `page` that checks every request stays on the API's
origin and the page keeps its Content-Security-Policy), against a `stageflow api` process of
its own (local backend, in memory).

The fan-out sleeps 0.3 s per instance, 200 at a time: it runs for about fifteen seconds,
long enough to watch its counts move. The page must stay a screenful all along: one node
for the forEach task, its counts on it, and a bounded list of its running instances."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import test_ui as ui
from tests.support.api import submit
from tests.support.live_api import running_api
from tests.support.polling import wait_until

sync_api = ui.sync_api
expect = sync_api.expect
browser = ui.browser
page = ui.page  # it asks for `api`: this module's
node = ui.node

COUNT = 10_000
RUN_MS = 180_000  # the longest the whole fan-out may take on a loaded machine
MAX_ELEMENTS = 400  # every element of the page, graph and panel included
MAX_HEIGHT = 3_000  # px: about three screens, whatever the number of instances
# The number after a mark in the fan-out node's counts (`✓ 1,234 ▶ 200 ✗ 0 of 10,000`).
COUNTED = """([selector, mark]) => {
  const text = document.querySelector(selector)?.textContent || "";
  const found = new RegExp(mark + " ([0-9,]+)").exec(text);
  return found ? Number(found[1].replace(/,/g, "")) : -1;
}"""


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with running_api(None, task_modules="tests.fixtures.extra_tasks") as client:
        yield client


def big_run() -> dict[str, Any]:
    return {
        "name": "ten-thousand",
        "parallelism": 200,
        "dag": [
            {"name": "prepare", "task": "noop"},
            {
                "name": "fan",
                "task": "sleep",
                "params": {"seconds": 0.3},
                "forEach": {"count": COUNT},
                "dependsOn": ["prepare"],
            },
            {"name": "report", "task": "noop", "dependsOn": ["fan"]},
        ],
    }


def running_instances(api: httpx.Client, run_id: str) -> int:
    fanouts = api.get(f"/workflow/{run_id}").json()["status"].get("fanouts") or {}
    return int(fanouts.get("fan", {}).get("phases", {}).get("Running", 0))


def succeeded(page: Any) -> int:
    return int(page.evaluate(COUNTED, ["#node-fan .fanout", "✓"]))


def assert_a_screenful(page: Any) -> None:
    elements = page.evaluate("document.querySelectorAll('*').length")
    assert elements <= MAX_ELEMENTS, f"{elements} elements on the page"
    assert page.locator("#graph *").count() <= 60  # three nodes, two edges, their parts
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= MAX_HEIGHT, f"the page is {height} px high"
    # The update handler keeps a big run's declared tasks only, never its instances.
    assert page.evaluate("Object.keys(record.status.tasks).sort()") == [
        "fan",
        "prepare",
        "report",
    ]


def test_a_run_of_ten_thousand_instances_is_a_screenful_that_counts_live(
    page: Any, api: httpx.Client
) -> None:
    run_id = submit(api, big_run())
    wait_until(lambda: running_instances(api, run_id) > 0)
    page.goto(f"{api.base_url}/ui/runs/{run_id}")

    fan = node(page, "fan")
    expect(fan).to_contain_text("▶ Running")
    expect(fan.locator(".fanout")).to_have_text(re.compile(r"^✓ [\d,]+ ▶ [\d,]+ ✗ 0 of 10,000$"))
    expect(page.locator(".node")).to_have_count(3)  # no node per instance
    assert "10,000 instances:" in (fan.get_attribute("aria-label") or "")
    # Live: the counts move as updates arrive on the WebSocket, the page never reloaded.
    first = succeeded(page)
    page.wait_for_function(
        f"([selector, mark]) => ({COUNTED})([selector, mark]) > {first + 500}",
        arg=["#node-fan .fanout", "✓"],
    )
    assert_a_screenful(page)

    # The panel: the counts in words, and the running instances listed while it runs.
    fan.click()
    expect(page.locator("#panel-title")).to_have_text("Task fan")
    counts = page.locator("#panel-counts")
    expect(counts).to_contain_text("of 10,000")
    expect(counts.locator('[data-phase="Running"]')).to_have_text(re.compile(r"^▶ \d+ Running$"))
    page.locator("#panel-instances summary").click()
    listed = page.locator("#instance-list button[data-instance]")
    expect(listed.first).to_have_attribute("data-instance", re.compile(r"^fan\[\d+\]$"))
    running = page.locator("#instance-list li").filter(has_text="▶ Running")
    expect(running.first).to_be_visible()
    assert listed.count() <= 50  # at most LISTED_MAX drawn; the rest are counted
    expect(page.locator("#instance-list .more")).to_have_text(
        re.compile(r"^… and [\d,]+ more running$")
    )
    expect(page.locator("#instances-note")).to_contain_text(re.compile(r"0 failed, [\d,]+ running"))
    # It is read again while updates come: the instances that were first have finished.
    before = listed.first.get_attribute("data-instance")
    expect(listed.first).not_to_have_attribute("data-instance", before or "")
    assert_a_screenful(page)

    # An instance's detail; it was running when listed, and is read again once it is not.
    listed.first.click()  # whichever is first when the click lands: the list moves
    expect(page.locator("#panel-title")).to_have_text(re.compile(r"^Task fan\[\d+\]$"))
    expect(page.locator("#panel-fields")).to_contain_text("✓ Succeeded")
    expect(page.locator("#panel-params")).to_contain_text('"seconds": 0.3')
    expect(node(page, "fan")).to_have_class(re.compile(r"\bselected\b"))
    page.get_by_role("button", name="← fan: all its instances").click()
    expect(page.locator("#panel-title")).to_have_text("Task fan")

    # The end: every instance succeeded, counted on the node and in the panel.
    expect(fan.locator(".fanout")).to_have_text("✓ 10,000 ▶ 0 ✗ 0 of 10,000", timeout=RUN_MS)
    expect(page.locator("#run-phase")).to_have_text("✓ Succeeded", timeout=RUN_MS)
    expect(node(page, "report")).to_contain_text("✓ Succeeded")
    expect(counts.locator('[data-phase="Succeeded"]')).to_have_text("✓ 10,000 Succeeded")
    expect(page.locator("#instances-note")).to_have_text("No instance is failed or running.")
    expect(page.locator("#instance-list li")).to_have_count(0)
    assert_a_screenful(page)
    final = api.get(f"/workflow/{run_id}").json()["status"]
    assert final["fanouts"]["fan"] == {"total": COUNT, "phases": {"Succeeded": COUNT}}
