"""Per-task output capture: concurrent tasks' prints never mix, and the buffer is bounded."""

from __future__ import annotations

import subprocess
import sys
import time

from stageflow.engine import TaskRegistry
from stageflow.engine.output import TaskOutput
from tests.support.engine import RecordingSink, RunBody


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


SWAPPER = """
import io, sys, threading
from stageflow.engine import output

def printer(stop):
    with output.captured():
        while not stop.is_set():
            print("a line from a task thread")

stop = threading.Event()
threads = [threading.Thread(target=printer, args=(stop,), daemon=True) for _ in range(4)]
for thread in threads:
    thread.start()
sink = io.StringIO()
for _ in range(3000):  # what pytest's capture and redirect_stdout do: swap sys.stdout
    sys.stdout = sink
    output.install()
    sys.stdout = sys.__stdout__
    output.install()
stop.set()
for thread in threads:
    thread.join(timeout=30)
print("done", file=sys.__stderr__)
"""


def test_swapping_sys_stdout_while_task_threads_print_does_not_crash() -> None:
    """`print` holds sys.stdout without a reference of its own (CPython 3.11): a router
    freed because sys.stdout was swapped mid-print segfaulted the interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", SWAPPER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().endswith("done")
