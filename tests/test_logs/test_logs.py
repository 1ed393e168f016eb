"""STAGEFLOW_LOG_FORMAT: json lines with the bound run fields, text with them appended."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from stageflow.logs import LogSettings, bind, bound, handler

logger = logging.getLogger("stageflow.test_logs")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    out = handler("json", stream)
    logger.addHandler(out)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(out)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_fields(json_lines: io.StringIO) -> None:
    logger.info("outside")
    with bind(run_id="r1", namespace="ns"):
        logger.info("about the run %d", 1)
        with bind(task="a"):
            logger.warning("about a task")
        logger.info("the run again")
    first, run, task, again = lines(json_lines)
    assert "run_id" not in first
    assert run["message"] == "about the run 1"
    assert (run["run_id"], run["namespace"], run.get("task")) == ("r1", "ns", None)
    assert (task["run_id"], task["namespace"], task["task"], task["level"]) == (
        "r1",
        "ns",
        "a",
        "WARNING",
    )
    assert "task" not in again
    assert run["time"].endswith("Z")
    assert run["logger"] == "stageflow.test_logs"


async def test_tasks_and_threads_started_under_a_binding_inherit_it(
    json_lines: io.StringIO,
) -> None:
    def in_thread() -> None:
        logger.info("from a thread")

    async def child() -> None:
        await asyncio.to_thread(in_thread)
        logger.info("from a task")

    with bind(run_id="r2", namespace="ns"):
        task = asyncio.create_task(child())
    await task
    assert [(line["message"], line["run_id"]) for line in lines(json_lines)] == [
        ("from a thread", "r2"),
        ("from a task", "r2"),
    ]
    assert bound() == {}


def test_kopf_object_lines_name_their_workflow_run(json_lines: io.StringIO) -> None:
    ref = {"kind": "WorkflowRun", "name": "r3", "namespace": "ns", "uid": "u"}
    logger.info("kopf says", extra={"k8s_ref": ref})
    (line,) = lines(json_lines)
    assert (line["run_id"], line["namespace"]) == ("r3", "ns")


def test_exceptions_are_one_json_line(json_lines: io.StringIO) -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("it broke")
    (line,) = lines(json_lines)
    assert "ValueError: bad" in line["exception"]


def test_text_format_appends_the_fields() -> None:
    stream = io.StringIO()
    out = handler("text", stream)
    logger.addHandler(out)
    try:
        with bind(run_id="r4", namespace="ns"):
            logger.warning("hello")
    finally:
        logger.removeHandler(out)
    assert (
        stream.getvalue()
        .rstrip()
        .endswith("WARNING stageflow.test_logs: hello [run_id=r4 namespace=ns]")
    )


def test_the_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEFLOW_LOG_FORMAT", "json")
    assert LogSettings().log_format == "json"
    monkeypatch.setenv("STAGEFLOW_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        LogSettings()
