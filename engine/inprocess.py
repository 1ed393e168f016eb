"""Running a registered task in this process.

Async tasks run on the event loop; sync ones in a thread pool of our own, so a
blocking task never stalls the loop and a burst of them is bounded by the
pool's size rather than by asyncio's small default. A thread cannot be killed:
a timed-out or cancelled sync task stops being waited for, but its thread runs
to its end (documented in docs/limits.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stageflow.engine.interfaces import Attempt, TaskResult
from stageflow.engine.output import TaskOutput, captured
from stageflow.engine.plan import PlannedTask
from stageflow.engine.registry import TaskDefinition, TaskRegistry
from stageflow.models.status import TaskStatus

MAX_OUTPUT_BYTES = 8 * 1024
LIVE_LOG_SECONDS = 0.5  # how often a running task's new output is published for followers

LogPublisher = Callable[[str], Awaitable[None]]


def interpret(value: object) -> TaskResult:
    """A task's return value as a result: True/None succeed, False fails, a dict is outputs."""
    if value is True or value is None:
        return TaskResult(ok=True)
    if value is False:
        return TaskResult(ok=False, message="task returned False")
    if isinstance(value, Mapping):
        return _outputs(dict(value))
    return TaskResult(
        ok=False, message=f"task returned {type(value).__name__}; expected a bool or a dict"
    )


def _outputs(outputs: dict[str, Any]) -> TaskResult:
    try:
        encoded = json.dumps(outputs, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        return TaskResult(ok=False, message=f"outputs are not JSON: {error}")
    if len(encoded.encode()) > MAX_OUTPUT_BYTES:
        return TaskResult(
            ok=False, message=f"outputs are {len(encoded)} bytes; at most {MAX_OUTPUT_BYTES}"
        )
    return TaskResult(ok=True, outputs=json.loads(encoded))


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _publish_while_running(output: TaskOutput, publish: LogPublisher) -> None:
    """Hands the output so far to `publish` whenever it grew, every LIVE_LOG_SECONDS: what
    `logs --follow` reads while the attempt runs (bounded like the final log)."""
    seen = 0
    while True:
        await asyncio.sleep(LIVE_LOG_SECONDS)
        if output.written != seen:
            seen = output.written
            await publish(output.text())


async def call(
    definition: TaskDefinition,
    params: Mapping[str, Any],
    pool: ThreadPoolExecutor | None = None,
    *,
    live_log: LogPublisher | None = None,
) -> TaskResult:
    """Call a task once and interpret what it returns or raises; keep what it printed,
    and publish it while the task runs when `live_log` is given."""
    with captured() as output:
        publisher = (
            asyncio.create_task(_publish_while_running(output, live_log))
            if live_log is not None
            else None
        )
        try:
            if definition.is_async:
                value = await definition.function(**params)
            else:
                loop = asyncio.get_running_loop()
                bound = functools.partial(definition.function, **params)
                context = contextvars.copy_context()  # carries the capture into the thread
                value = await loop.run_in_executor(pool, context.run, bound)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            result = TaskResult(ok=False, message=describe(error))
        else:
            result = interpret(value)
        finally:
            if publisher is not None:
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
    result.log = output.text() or None
    return result


class InProcessExecutor:
    """Runs registered tasks as coroutines (async) or in threads (sync)."""

    name = "inprocess"

    def __init__(self, registry: TaskRegistry, *, max_threads: int = 64) -> None:
        self._registry = registry
        self._pool = ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="stageflow-task"
        )

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        return False  # an in-process attempt dies with its process; it is attempted again

    async def execute(self, attempt: Attempt) -> TaskResult:
        spec = attempt.task.spec
        definition = self._registry.get(spec.task or "")
        if definition is None:
            return TaskResult(ok=False, message=f"Unknown task: {spec.task}")
        return await call(definition, attempt.params, self._pool, live_log=attempt.live_log)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
