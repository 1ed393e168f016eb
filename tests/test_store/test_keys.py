"""The Redis key layout: store/keys.py builds every name, and the docs list the same ones.

The layout is a contract with data already in Redis and with programs reading it
(redis-cli, dashboards), so the literal names are pinned here: a change to keys.py
is then a change someone meant. The docs' key table is checked against keys.py, so
that list cannot drift from the code."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from stageflow.models.records import InvalidRunIdError
from stageflow.store.keys import (
    CONTROL,
    NAMESPACES,
    events_channel,
    logs_key,
    run_key,
    runs_key,
    synced_key,
    tasks_key,
    tombstone_key,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUN_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "keys"))  # fixed: it names test ids
NS = "team-a"


def every_name() -> dict[str, str]:
    """Each name keys.py builds, for namespace NS and run RUN_ID."""
    return {
        "run": run_key(NS, RUN_ID),
        "tasks": tasks_key(NS, RUN_ID),
        "logs": logs_key(NS, RUN_ID),
        "tombstone": tombstone_key(NS, RUN_ID),
        "events": events_channel(NS, RUN_ID),
        "runs": runs_key(NS),
        "namespaces": NAMESPACES,
        "synced": synced_key(NS),
        "control": CONTROL,
    }


def test_the_layout_is_the_one_data_in_redis_has() -> None:
    assert every_name() == {
        "run": f"stageflow:run:team-a/{RUN_ID}",
        "tasks": f"stageflow:run:team-a/{RUN_ID}:tasks",
        "logs": f"stageflow:run:team-a/{RUN_ID}:logs",
        "tombstone": f"stageflow:run:team-a/{RUN_ID}:deleted",
        "events": f"stageflow:run:team-a/{RUN_ID}:events",
        "runs": "stageflow:runs:team-a",
        "namespaces": "stageflow:namespaces",
        "synced": "stageflow:mirror:team-a:synced",
        "control": "stageflow:control",
    }
    assert synced_key("*") == "stageflow:mirror:*:synced"  # the mirror of every namespace


@pytest.mark.parametrize("bad", [f"{RUN_ID}:tasks", "*", RUN_ID.upper(), ""])
def test_no_key_is_built_from_what_is_not_a_run_id(bad: str) -> None:
    for build in (run_key, tasks_key, logs_key, tombstone_key, events_channel):
        with pytest.raises(InvalidRunIdError):
            build(NS, bad)


def test_the_docs_key_table_lists_what_keys_py_builds() -> None:
    """The table under "| key | type | holds |" in docs/, placeholders filled in."""
    tables = [
        text
        for page in DOCS.rglob("*.md")
        if "| key | type | holds |" in (text := page.read_text())
    ]
    assert len(tables) == 1, "one page of docs/ has the key table"
    listed = {
        name.replace("{ns or *}", NS).replace("{ns}", NS).replace("{id}", RUN_ID)
        for name in re.findall(r"^\| `(stageflow:[^`]+)` \|", tables[0], re.MULTILINE)
    }
    assert listed == set(every_name().values())
