"""The /ui page's server side: its files, and the run's graph drawn as SVG."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.api.ui.graph import columns
from stageflow.engine import TaskRegistry, WorkflowRequest
from stageflow.engine.plan import dependencies, normalise
from tests.test_api.conftest import SEED, submit, wait_for_run


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
        "task_a": (),
        "task_b": (),
        "task_c": ("task_a", "task_b"),
        "task_d": ("task_c",),
    }
    assert columns(edges) == [["task_a", "task_b"], ["task_c"], ["task_d"]]


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
    assert svg.text.count('class="edge"') == 2
    assert svg.text.count("✓ Succeeded") == 3
    assert app_client.get("/ui/runs/nope/graph.svg").status_code == 404


def test_the_graph_needs_the_get_permission(tasks: TaskRegistry, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("viewer-token vera viewer\n")
    settings = ApiSettings(auth_mode="token", auth_tokens_file=tokens)
    with TestClient(create_app(settings, tasks=tasks)) as client:
        assert client.get("/ui/runs/x/graph.svg").status_code == 401
        assert client.get("/ui/").status_code == 200  # the page asks for the token itself
        viewer = {"Authorization": "Bearer viewer-token"}
        assert client.get("/ui/runs/x/graph.svg", headers=viewer).status_code == 404
