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
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stageflow.engine.interfaces import Attempt, TaskResult
from stageflow.engine.output import TaskOutput, captured
from stageflow.engine.plan import PlannedTask
from stageflow.engine.registry import TaskDefinition, TaskRegistry
from stageflow.models.status import TaskStatus

logger = logging.getLogger(__name__)

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


class LiveLogs:
    """Publishes the output of every running in-process attempt that grew, every
    LIVE_LOG_SECONDS, from one loop that runs while any attempt does: what `logs --follow`
    reads while an attempt runs. One loop for all attempts, rather than a task or a timer
    each: most tasks end long before their first publish, and a task created, cancelled and
    awaited per attempt was 60% of the engine's time per no-op task."""

    def __init__(self) -> None:
        self._running: dict[int, tuple[TaskOutput, LogPublisher]] = {}
        self._seen: dict[int, int] = {}
        self._loop: asyncio.Task[None] | None = None

    def add(self, output: TaskOutput, publish: LogPublisher) -> int:
        token = id(output)
        self._running[token] = (output, publish)
        self._seen[token] = 0
        if self._loop is None:
            # An empty context: not the first attempt's, whose output capture it would carry.
            self._loop = asyncio.create_task(
                self._publish_while_running(), context=contextvars.Context()
            )
        return token

    def remove(self, token: int) -> None:
        self._running.pop(token, None)
        self._seen.pop(token, None)

    async def _publish_while_running(self) -> None:
        try:
            while self._running:
                await asyncio.sleep(LIVE_LOG_SECONDS)
                for token, (output, publish) in list(self._running.items()):
                    if token in self._seen and output.written != self._seen[token]:
                        self._seen[token] = output.written
                        try:
                            await publish(output.text())
                        except Exception:  # one store write failing must not stop the rest
                            logger.warning(
                                "publishing a running task's output failed", exc_info=True
                            )
        finally:
            self._loop = None

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)


async def call(
    definition: TaskDefinition,
    params: Mapping[str, Any],
    pool: ThreadPoolExecutor | None = None,
    *,
    live_log: LogPublisher | None = None,
    live: LiveLogs | None = None,
) -> TaskResult:
    """Call a task once and interpret what it returns or raises; keep what it printed,
    and publish it while the task runs when `live_log` (and the executor's `live`) is given."""
    with captured() as output:
        token = live.add(output, live_log) if live is not None and live_log is not None else None
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
            if live is not None and token is not None:
                live.remove(token)
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
        self._live = LiveLogs()

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        return False  # an in-process attempt dies with its process; it is attempted again

    async def execute(self, attempt: Attempt) -> TaskResult:
        spec = attempt.task.spec
        definition = self._registry.get(spec.task or "")
        if definition is None:
            return TaskResult(ok=False, message=f"Unknown task: {spec.task}")
        return await call(
            definition, attempt.params, self._pool, live_log=attempt.live_log, live=self._live
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
