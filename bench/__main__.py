"""Engine overhead, measured against bare asyncio doing the same work in the same run.

Each scenario runs the workflow through the real runner (plan compiled, status
kept, transitions coalesced into a sink) and a baseline that awaits the same
task functions with `asyncio.gather` and nothing else. Ratios, not absolute
times, are what to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from stageflow.engine import (
    CoalescingSink,
    Executor,
    InProcessExecutor,
    RunPhase,
    RunStatus,
    WorkflowRequest,
    WorkflowRunner,
    compile_workflow,
    registry,
)


class CountingSink:
    def __init__(self) -> None:
        self.writes = 0

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        self.writes += 1

    async def record_log(self, task_id: str, text: str) -> None:
        return None


async def run_engine(body: dict[str, Any]) -> tuple[float, int]:
    executor = InProcessExecutor(registry)
    sink = CountingSink()
    started = time.perf_counter()
    plan = compile_workflow(
        WorkflowRequest.model_validate(body), registry=registry, max_tasks=10_000
    )
    runner = WorkflowRunner(
        plan,
        executors={Executor.INPROCESS: executor},
        sink=CoalescingSink(sink, interval=0.05),
    )
    status = await runner.run()
    elapsed = time.perf_counter() - started
    executor.close()
    assert status.phase is RunPhase.SUCCEEDED, status.message
    return elapsed, sink.writes


def parallel(count: int, task: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    tasks = [{"name": f"t{i}", "task": task, "params": params or {}} for i in range(count)]
    return {"workflow": [{"type": "parallel", "tasks": tasks}]}


def sequential(count: int, task: str) -> dict[str, Any]:
    return {
        "workflow": [
            {"type": "sequential", "tasks": [{"name": f"t{i}", "task": task} for i in range(count)]}
        ]
    }


async def baseline_parallel(count: int, make: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(make() for _ in range(count)))
    return time.perf_counter() - started


async def baseline_sequential(count: int, make: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await make()
    return time.perf_counter() - started


def median_of(repeats: int, measure: Callable[[], Awaitable[Any]]) -> list[Any]:
    return [asyncio.run(measure()) for _ in range(repeats)]  # type: ignore[arg-type]


def peak_memory(measure: Callable[[], Awaitable[Any]]) -> int:
    tracemalloc.start()
    asyncio.run(measure())  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def report(name: str, engine: float, baseline: float, count: int, extra: str = "") -> None:
    ratio = engine / baseline if baseline else float("inf")
    per_task = (engine - baseline) / count * 1e6
    print(
        f"{name:44} engine {engine * 1000:9.1f} ms   baseline {baseline * 1000:9.1f} ms"
        f"   ratio {ratio:7.2f}   overhead {per_task:7.1f} µs/task {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    registry.load()
    noop = registry.get("noop")
    sleep = registry.get("sleep")
    assert noop is not None
    assert sleep is not None

    for count in (1000, 5000):
        runs = median_of(args.repeats, lambda count=count: run_engine(parallel(count, "noop")))  # type: ignore[misc]
        base = median_of(args.repeats, lambda count=count: baseline_parallel(count, noop.function))  # type: ignore[misc]
        engine = statistics.median(elapsed for elapsed, _ in runs)
        writes = max(w for _, w in runs)
        report(
            f"{count} no-op tasks, one parallel stage",
            engine,
            statistics.median(base),
            count,
            f"  ({writes} coalesced status writes)",
        )

    runs = median_of(args.repeats, lambda: run_engine(sequential(500, "noop")))
    base = median_of(args.repeats, lambda: baseline_sequential(500, noop.function))
    report(
        "500 no-op tasks, one sequential stage",
        statistics.median(r for r, _ in runs),
        statistics.median(base),
        500,
    )

    runs = median_of(1, lambda: run_engine(parallel(4, "sleep", {"seconds": 1})))
    base = median_of(1, lambda: baseline_parallel(4, lambda: sleep.function(seconds=1)))
    report("4 parallel sleep(1s) tasks", runs[0][0], base[0], 4)

    engine_peak = peak_memory(lambda: run_engine(parallel(1000, "noop")))
    base_peak = peak_memory(lambda: baseline_parallel(1000, noop.function))
    print(
        f"{'peak memory, 1000 parallel no-op tasks':44} engine {engine_peak / 1e6:7.2f} MB"
        f"   baseline {base_peak / 1e6:7.2f} MB   ratio {engine_peak / base_peak:7.2f}"
        f"   {(engine_peak - base_peak) / 1000 / 1024:5.2f} KiB/task"
    )


if __name__ == "__main__":
    main()
