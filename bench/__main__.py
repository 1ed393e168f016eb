"""Engine overhead, measured against bare asyncio doing the same work in the same run.

Each scenario runs the workflow through the real runner (plan compiled, status
kept, transitions coalesced into a sink) and a baseline that awaits the same
task functions with `asyncio.gather` and nothing else. Ratios, not absolute
times, are what to compare across machines.

A parallel stage of more than STAGE_TASKS (1,000) tasks is made of tasks that each fan
out over up to 1,000 items (5,000 that way are 5,005 instances), as when a request held
at most 1,000 entries in a list: the scenarios stay those docs/benchmarks.md measured.
`--quick` runs every scenario at a tiny size, once: `make test` does, so the benchmark
keeps running as the schema changes.
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

    async def written(self) -> None:
        return None

    async def record_log(self, task_id: str, text: str) -> None:
        return None


async def run_engine(body: dict[str, Any]) -> tuple[float, int]:
    executor = InProcessExecutor(registry)
    sink = CountingSink()
    started = time.perf_counter()
    plan = compile_workflow(
        WorkflowRequest.model_validate(body),
        registry=registry,
        max_instances=1_000_000,
        max_items=1_000_000,
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


STAGE_TASKS = 1000  # a bigger parallel stage is built of fan-outs (the module's docstring)


def parallel(count: int, task: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One parallel stage of `count` task instances: plain tasks up to STAGE_TASKS, else
    tasks that each fan out (`forEach`) over up to STAGE_TASKS items."""
    tasks: list[dict[str, Any]]
    if count <= STAGE_TASKS:
        tasks = [{"name": f"t{i}", "task": task, "params": params or {}} for i in range(count)]
    else:
        sizes = [STAGE_TASKS] * (count // STAGE_TASKS)
        sizes += [count % STAGE_TASKS] if count % STAGE_TASKS else []
        tasks = [
            {"name": f"t{i}", "task": task, "params": params or {}, "forEach": list(range(size))}
            for i, size in enumerate(sizes)
        ]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="every scenario at a tiny size, once (a smoke run)"
    )
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    sizes = (10, STAGE_TASKS + 5) if args.quick else (1000, 5000)
    chain = 5 if args.quick else 500
    nap = 0.01 if args.quick else 1.0
    memory_size = 10 if args.quick else 1000
    registry.load()
    noop = registry.get("noop")
    sleep = registry.get("sleep")
    assert noop is not None
    assert sleep is not None

    for count in sizes:
        runs = median_of(repeats, lambda count=count: run_engine(parallel(count, "noop")))  # type: ignore[misc]
        base = median_of(repeats, lambda count=count: baseline_parallel(count, noop.function))  # type: ignore[misc]
        engine = statistics.median(elapsed for elapsed, _ in runs)
        writes = max(w for _, w in runs)
        report(
            f"{count} no-op tasks, one parallel stage",
            engine,
            statistics.median(base),
            count,
            f"  ({writes} coalesced status writes)",
        )

    runs = median_of(repeats, lambda: run_engine(sequential(chain, "noop")))
    base = median_of(repeats, lambda: baseline_sequential(chain, noop.function))
    report(
        f"{chain} no-op tasks, one sequential stage",
        statistics.median(r for r, _ in runs),
        statistics.median(base),
        chain,
    )

    runs = median_of(1, lambda: run_engine(parallel(4, "sleep", {"seconds": nap})))
    base = median_of(1, lambda: baseline_parallel(4, lambda: sleep.function(seconds=nap)))
    report(f"4 parallel sleep({nap:g}s) tasks", runs[0][0], base[0], 4)

    engine_peak = peak_memory(lambda: run_engine(parallel(memory_size, "noop")))
    base_peak = peak_memory(lambda: baseline_parallel(memory_size, noop.function))
    print(
        f"{f'peak memory, {memory_size} parallel no-op tasks':44} engine "
        f"{engine_peak / 1e6:7.2f} MB   baseline {base_peak / 1e6:7.2f} MB   ratio "
        f"{engine_peak / base_peak:7.2f}   {(engine_peak - base_peak) / memory_size / 1024:5.2f} "
        "KiB/task"
    )


if __name__ == "__main__":
    main()
