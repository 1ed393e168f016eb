"""The README's example reproduces: each `curl` in its quick start, sent to the API, answers
what the README shows (run IDs aside), and every page the README links to exists."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from tests.support.api import wait_for_run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def console_steps() -> list[tuple[str, str]]:
    """(command, output) of every `$ curl` in the README's console blocks."""
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            while command.endswith("\\"):
                more, _, output = output.partition("\n")
                command = command[:-1] + more
            if command.startswith("curl"):
                steps.append((command, output.strip()))
    return steps


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(status_flush_seconds=0.01))) as api:
        yield api


def test_the_quick_start_reproduces(client: TestClient) -> None:
    steps = console_steps()
    assert len(steps) >= 5, steps
    run_id: str | None = None
    for command, shown in steps:
        path = re.search(r"localhost:8080(\S+)", command)
        assert path is not None, command
        url = path.group(1)
        if run_id is not None:
            url = UUID.sub(run_id, url)
        if "-X POST" in command:
            body = re.search(r"-d '(.*)'", command)
            assert body is not None, command
            answer = client.post(url, json=json.loads(body.group(1)))
        else:
            answer = client.get(url)
        got = answer.text.strip()
        if answer.headers["content-type"].startswith("application/json") and "run_id" in got:
            run_id = answer.json()["run_id"]
            uuid.UUID(run_id)
            wait_for_run(client, run_id)
            got = UUID.sub(UUID.search(shown).group(0), got)  # type: ignore[union-attr]
        assert got == shown, (command, got)


def test_every_page_the_readme_links_to_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith("http")]
    assert "docs/quickstart.md" in local
    for link in local:
        assert (ROOT / link).exists(), link


def test_the_readme_stays_short() -> None:
    assert len(README.splitlines()) <= 200
