"""The /ui page's server side: its files, and the run's graph drawn as SVG."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.api.ui.graph import columns, fanout_text, fanout_words
from stageflow.engine import TaskRegistry, WorkflowRequest
from stageflow.engine.plan import dependencies, normalise
from stageflow.models.status import FanoutSummary
from tests.support.api import submit, wait_for_run
from tests.support.workflows import SEED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"


@pytest.fixture
def app_client(tasks: TaskRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(status_flush_seconds=0.01), tasks=tasks)) as client:
        yield client


def test_stages_become_columns_and_edges() -> None:
    spec = normalise(
        WorkflowRequest.model_validate(
            {
                "workflow": [
                    {"type": "parallel", "tasks": ["task_a", "task_b"]},
                    {"type": "sequential", "tasks": ["task_c", "task_d"]},
                ]
            }
        )
    )
    edges = dependencies(spec)
    assert edges == {
        "task_a": {},
        "task_b": {},
        "task_c": {"task_a": "order", "task_b": "order"},
        "task_d": {"task_c": "order"},
    }
    assert columns(edges) == [["task_a", "task_b"], ["task_c"], ["task_d"]]


def test_a_reference_is_an_edge_of_its_own_kind() -> None:
    """The nightly example: `check` reads `extract`'s outputs and depends only on `wait`."""
    body = yaml.safe_load((EXAMPLES / "nightly.yaml").read_text())
    spec = normalise(WorkflowRequest.model_validate(body))
    assert dependencies(spec) == {
        "extract": {},
        "wait": {},
        "check": {"wait": "order", "extract": "data"},
        "report": {"check": "order"},
    }


def test_a_reference_that_is_also_a_dependency_is_drawn_once_as_order() -> None:
    spec = normalise(
        WorkflowRequest.model_validate(
            {
                "dag": [
                    {"name": "a", "task": "echo", "params": {"x": 1}},
                    {"name": "b", "task": "echo", "params": {"y": "{{ tasks.a.outputs.x }}"}},
                    {
                        "name": "c",
                        "task": "echo",
                        "dependsOn": ["a"],
                        "forEach": "{{ tasks.b.outputs.y }}",
                        "when": "{{ tasks.a.outputs.x }} > 0",
                    },
                ]
            }
        )
    )
    assert dependencies(spec) == {
        "a": {},
        "b": {"a": "data"},
        "c": {"a": "order", "b": "data"},
    }


def test_a_dag_declared_out_of_order_is_laid_out_by_depth() -> None:
    assert columns({"late": ("early",), "early": (), "side": ()}) == [["early", "side"], ["late"]]


def test_the_page_and_its_assets_are_served(app_client: TestClient) -> None:
    page = app_client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
    assert len(assets) == 3
    run_page = app_client.get("/ui/runs/some-id").text
    assets += re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', run_page)
    for asset in assets:
        assert app_client.get(asset).status_code == 200, asset
    assert "http://" not in page.text + run_page
    assert "https://" not in page.text + run_page


def test_the_graph_draws_every_task_in_its_phase(app_client: TestClient) -> None:
    run_id = submit(app_client, SEED)
    wait_for_run(app_client, run_id)
    svg = app_client.get(f"/ui/runs/{run_id}/graph.svg")
    assert svg.headers["content-type"] == "image/svg+xml"
    for task in ("task_a", "task_b", "task_c"):
        assert re.search(rf'id="node-{task}" class="node phase-Succeeded"', svg.text)
    assert svg.text.count('class="edge edge-order"') == 2
    assert svg.text.count("✓ Succeeded") == 3
    assert app_client.get("/ui/runs/nope/graph.svg").status_code == 404


def test_a_fan_out_is_one_node_that_counts_its_instances(app_client: TestClient) -> None:
    body = {
        "failFast": False,
        "dag": [
            {"name": "fan", "task": "noop", "forEach": {"count": 1200}},
            {"name": "bad", "task": "fail", "forEach": {"count": 2}},
            {"name": "after", "task": "task_a", "dependsOn": ["fan"]},
        ],
    }
    run_id = submit(app_client, body)
    wait_for_run(app_client, run_id)
    svg = app_client.get(f"/ui/runs/{run_id}/graph.svg").text
    assert svg.count('class="node ') == 3  # no node per instance
    fan = re.search(r'<g id="node-fan" [^>]*data-fanout="true">.*?</g>', svg)
    assert fan is not None
    assert '<text x="12" y="67" class="fanout">✓ 1,200 ▶ 0 ✗ 0 of 1,200</text>' in fan.group()
    assert "1,200 instances: 1,200 Succeeded, 0 Running, 0 Failed" in fan.group()
    assert "✓ 0 ▶ 0 ✗ 2 of 2" in svg
    after = re.search(r'<g id="node-after" [^>]*>', svg)
    assert after is not None
    assert "data-fanout" not in after.group()


def test_a_fan_out_counts_every_phase_it_has() -> None:
    assert fanout_text(None) == "no instances yet"
    counts = FanoutSummary(
        total=10_000, phases={"Succeeded": 9_980, "Running": 10, "Cancelled": 4, "Pending": 6}
    )
    assert fanout_text(counts) == "✓ 9,980 ▶ 10 ✗ 0 ⊘ 4 of 10,000"
    assert fanout_words(counts) == (
        "10,000 instances: 9,980 Succeeded, 10 Running, 0 Failed, 4 Cancelled"
    )


def test_finally_tasks_are_drawn_apart_right_of_the_main_graph(app_client: TestClient) -> None:
    body = {
        **SEED,
        "finally": [
            {"name": "tidy", "task": "task_d"},
            {"name": "report", "task": "echo", "params": {"t": "{{ tasks.task_c.outputs }}"}},
            {"name": "last", "task": "task_a", "dependsOn": ["tidy"]},
        ],
    }
    run_id = submit(app_client, body)
    wait_for_run(app_client, run_id)
    svg = app_client.get(f"/ui/runs/{run_id}/graph.svg").text
    x = {
        task: int(found.group(1))
        for task in ("task_a", "task_b", "task_c", "tidy", "report", "last")
        if (found := re.search(rf'data-task="{task}"[^>]*transform="translate\((\d+),', svg))
    }
    assert len(x) == 6
    divider = int(re.search(r'class="divider" x1="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert max(x["task_a"], x["task_b"], x["task_c"]) < divider < min(x["tidy"], x["report"])
    assert x["last"] > x["tidy"]  # ordered among themselves
    assert "finally: after the rest" in svg
    # their only edges are among themselves: reading task_c's outputs is no edge
    assert 'data-from="tidy" data-to="last"' in svg
    assert 'data-to="report"' not in svg


def test_the_graph_needs_the_get_permission(tasks: TaskRegistry, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("viewer-token vera viewer\n")
    settings = ApiSettings(auth_mode="token", auth_tokens_file=tokens)
    with TestClient(create_app(settings, tasks=tasks)) as client:
        assert client.get("/ui/runs/x/graph.svg").status_code == 401
        assert client.get("/ui/").status_code == 200  # the page asks for the token itself
        viewer = {"Authorization": "Bearer viewer-token"}
        assert client.get("/ui/runs/x/graph.svg", headers=viewer).status_code == 404


def test_every_answer_carries_the_security_headers(app_client: TestClient) -> None:
    """No other site may frame the page (its Cancel and Delete buttons) or run inline code
    in it; no answer may be sniffed as another type."""
    answers = {
        "/ui/": app_client.get("/ui/"),
        "/ui/runs/x": app_client.get("/ui/runs/x"),
        "/ui/static/run.js": app_client.get("/ui/static/run.js"),
        "/workflow/nope": app_client.get("/workflow/nope"),
        "/docs": app_client.get("/docs"),
        "/healthz": app_client.get("/healthz"),
    }
    for path, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
    page_policy = answers["/ui/runs/x"].headers["content-security-policy"]
    assert "script-src 'self';" in page_policy
    assert "unsafe-inline" not in page_policy
    assert (
        answers["/workflow/nope"]
        .headers["content-security-policy"]
        .startswith("default-src 'none'")
    )


def test_head_on_a_page_answers_like_get_without_a_body(app_client: TestClient) -> None:
    for path in ("/ui/", "/ui/runs/some-id"):
        head, get = app_client.head(path), app_client.get(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == str(len(get.content))


def test_allow_names_only_methods_that_are_served(app_client: TestClient) -> None:
    refused = app_client.put("/ui/")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS"
    static = app_client.put("/ui/static/run.js")
    assert static.status_code == 405
    assert static.headers["allow"] == "GET, HEAD, OPTIONS"
    assert app_client.head("/ui/static/run.js").status_code == 200
    healthz = app_client.head("/healthz")
    assert healthz.status_code == 405
    assert "HEAD" not in healthz.headers["allow"].split(", ")
    options = app_client.options("/workflow/x")
    assert options.status_code == 204
    assert options.headers["allow"] == "DELETE, GET, OPTIONS"
    for method in options.headers["allow"].split(", "):
        if method != "OPTIONS":
            assert app_client.request(method, "/workflow/x").status_code != 405, method
