"""Per-task output capture: concurrent tasks' prints never mix, and the buffer is bounded."""

from __future__ import annotations

import time

from stageflow.engine import TaskRegistry
from stageflow.engine.output import TaskOutput
from tests.test_engine.conftest import RecordingSink, RunBody


def test_the_buffer_keeps_the_tail_and_says_what_it_dropped() -> None:
    output = TaskOutput(limit=10)
    for chunk in ("aaaa", "bbbb", "cccc"):
        output.write(chunk)
    assert output.text() == "[4 earlier characters dropped]\nbbbbcccc"
    huge = TaskOutput(limit=4)
    huge.write("0123456789")
    assert huge.text() == "[6 earlier characters dropped]\n6789"


async def test_concurrent_tasks_capture_only_their_own_output(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    async def chatty_async(word: str) -> bool:
        import asyncio

        for i in range(3):
            print(f"{word} {i}")
            await asyncio.sleep(0.01)
        return True

    def chatty_sync(word: str) -> bool:
        for i in range(3):
            print(f"{word} {i}")
            time.sleep(0.01)
        return True

    tasks.register(chatty_async)
    tasks.register(chatty_sync)
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": "a1", "task": "chatty_async", "params": {"word": "alpha"}},
                    {"name": "a2", "task": "chatty_async", "params": {"word": "beta"}},
                    {"name": "s1", "task": "chatty_sync", "params": {"word": "gamma"}},
                    {"name": "s2", "task": "chatty_sync", "params": {"word": "delta"}},
                ],
            }
        ]
    }
    sink = RecordingSink()
    await run_body(body, sink)
    for task_id, word in {"a1": "alpha", "a2": "beta", "s1": "gamma", "s2": "delta"}.items():
        assert sink.logs[task_id] == f"--- attempt 1 ---\n{word} 0\n{word} 1\n{word} 2\n"


async def test_every_attempt_reports_its_own_output(tasks: TaskRegistry, run_body: RunBody) -> None:
    seen = 0

    def flaky() -> bool:
        nonlocal seen
        seen += 1
        print(f"try {seen}")
        return seen > 1

    tasks.register(flaky)
    sink = RecordingSink()
    await run_body(
        {"dag": [{"name": "f", "task": "flaky", "retries": 1, "retryBackoffSeconds": 0}]}, sink
    )
    assert sink.logs["f"] == "--- attempt 2 ---\ntry 2\n"
