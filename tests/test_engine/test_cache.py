"""The result cache (engine/cache.py): a task with `cache` reuses the outputs of an earlier
success with the same inputs instead of running. On a virtual clock (looptime): expiry is
waited out in virtual seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from stageflow.engine import (
    Executor,
    InProcessExecutor,
    RunPhase,
    RunStatus,
    SpecError,
    TaskPhase,
    TaskRegistry,
    TaskStatus,
    WorkflowRequest,
    WorkflowRunner,
    compile_workflow,
)
from stageflow.engine.cache import RunCache
from stageflow.engine.interfaces import Attempt, CacheEntry, TaskResult
from stageflow.engine.plan import PlannedTask
from stageflow.engine.policy import TaskPolicy
from stageflow.store.result_cache import MemoryResultCache
from tests.support.engine import RecordingSink

pytestmark = pytest.mark.looptime


@pytest.fixture
def executions(tasks: TaskRegistry) -> list[dict[str, Any]]:
    """`compute` notes the params of every execution and returns them with a counter;
    `flaky` fails its first `failures` executions; `grow` counts up, for `until` loops."""
    seen: list[dict[str, Any]] = []

    async def compute(**params: Any) -> dict[str, Any]:
        seen.append(params)
        await asyncio.sleep(1)
        return {**params, "execution": len(seen)}

    async def flaky(failures: int = 1, **params: Any) -> dict[str, Any]:
        seen.append(params)
        if len(seen) <= failures:
            raise RuntimeError(f"failure {len(seen)}")
        return {"ok": True}

    async def grow(**params: Any) -> dict[str, Any]:
        seen.append(params)
        return {"n": len(seen)}

    tasks.register(compute)
    tasks.register(flaky)
    tasks.register(grow)
    return seen


@pytest.fixture
def cache() -> MemoryResultCache:
    return MemoryResultCache()


async def run(
    body: dict[str, Any],
    tasks: TaskRegistry,
    cache: Any,
    run_id: str,
    **limits: Any,
) -> RunStatus:
    plan = compile_workflow(WorkflowRequest.model_validate(body), registry=tasks, **limits)
    runner = WorkflowRunner(
        plan,
        executors={Executor.INPROCESS: InProcessExecutor(tasks)},
        sink=RecordingSink(),
        cache=RunCache(cache, run_id=run_id),
    )
    return await runner.run()


def one(params: dict[str, Any] | None = None, **cache: Any) -> dict[str, Any]:
    entry = {"name": "c", "task": "compute", "params": params or {"x": 1}}
    return {"dag": [{**entry, "cache": {"ttlSeconds": 3600, **cache}}]}


async def test_a_second_run_reuses_the_first_ones_outputs(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    first = await run(one(), tasks, cache, "run-1")
    second = await run(one(), tasks, cache, "run-2")
    assert executions == [{"x": 1}]
    assert first.tasks["c"].cached is None
    assert first.tasks["c"].attempts == 1
    task = second.tasks["c"]
    assert second.phase is RunPhase.SUCCEEDED
    assert task.phase is TaskPhase.SUCCEEDED
    assert task.cached is True
    assert task.cached_from is not None
    assert (task.cached_from.run_id, task.cached_from.task) == ("run-1", "c")
    assert task.attempts == 0  # nothing ran
    assert task.outputs == first.tasks["c"].outputs == {"x": 1, "execution": 1}
    assert task.message == "cached: the result of task c in run run-1"
    assert task.to_json_dict()["cachedFrom"] == {"runId": "run-1", "task": "c"}


async def test_a_hit_takes_no_time(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    loop = asyncio.get_running_loop()
    await run(one(), tasks, cache, "run-1")
    started = loop.time()
    await run(one(), tasks, cache, "run-2")
    assert loop.time() - started < 0.1  # compute takes a (virtual) second when it runs


async def test_other_params_another_task_or_another_version_miss(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    await run(one({"x": 1}), tasks, cache, "run-1")
    changed = await run(one({"x": 2}), tasks, cache, "run-2")
    versioned = await run(one({"x": 1}, version="v2"), tasks, cache, "run-3")
    again = await run(one({"x": 1}, version="v2"), tasks, cache, "run-4")
    assert changed.tasks["c"].cached is None
    assert versioned.tasks["c"].cached is None
    assert again.tasks["c"].cached_from is not None
    assert again.tasks["c"].cached_from.run_id == "run-3"
    assert executions == [{"x": 1}, {"x": 2}, {"x": 1}]


async def test_the_task_name_in_the_run_is_not_part_of_the_key(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    await run(one(), tasks, cache, "run-1")
    renamed = one()
    renamed["dag"][0]["name"] = "other"
    status = await run(renamed, tasks, cache, "run-2")
    assert status.tasks["other"].cached_from is not None
    assert status.tasks["other"].cached_from.task == "c"
    assert len(executions) == 1


async def test_an_entry_expires_after_its_ttl(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    await run(one(ttlSeconds=60), tasks, cache, "run-1")  # ends at t=1 s
    await asyncio.sleep(50)
    within = await run(one(ttlSeconds=60), tasks, cache, "run-2")
    await asyncio.sleep(20)
    after = await run(one(ttlSeconds=60), tasks, cache, "run-3")
    assert within.tasks["c"].cached is True
    assert after.tasks["c"].cached is None
    assert len(executions) == 2


@pytest.mark.parametrize("where", ["task", "run"])
async def test_refresh_recomputes_and_replaces_the_entry(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache, where: str
) -> None:
    await run(one(), tasks, cache, "run-1")
    body = one(refresh=True) if where == "task" else {**one(), "refresh": True}
    refreshed = await run(body, tasks, cache, "run-2")
    after = await run(one(), tasks, cache, "run-3")
    assert refreshed.tasks["c"].cached is None
    assert refreshed.tasks["c"].outputs == {"x": 1, "execution": 2}
    assert after.tasks["c"].cached_from is not None
    assert after.tasks["c"].cached_from.run_id == "run-2"
    assert after.tasks["c"].outputs == {"x": 1, "execution": 2}
    assert len(executions) == 2


async def test_a_failure_is_never_cached(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    body = {"dag": [{"name": "f", "task": "flaky", "cache": {"ttlSeconds": 60}}]}
    failed = await run(body, tasks, cache, "run-1")
    succeeded = await run(body, tasks, cache, "run-2")
    reused = await run(body, tasks, cache, "run-3")
    assert failed.tasks["f"].phase is TaskPhase.FAILED
    assert succeeded.tasks["f"].phase is TaskPhase.SUCCEEDED
    assert succeeded.tasks["f"].cached is None
    assert reused.tasks["f"].cached_from is not None
    assert reused.tasks["f"].cached_from.run_id == "run-2"
    assert len(executions) == 2


async def test_a_success_after_retries_is_recorded(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    body = {
        "dag": [
            {
                "name": "f",
                "task": "flaky",
                "params": {"failures": 2},
                "retries": 2,
                "retryBackoffSeconds": 5,
                "cache": {"ttlSeconds": 60},
            }
        ]
    }
    first = await run(body, tasks, cache, "run-1")
    second = await run(body, tasks, cache, "run-2")
    assert first.tasks["f"].phase is TaskPhase.SUCCEEDED
    assert first.tasks["f"].attempts == 3
    assert second.tasks["f"].cached is True
    assert second.tasks["f"].attempts == 0
    assert len(executions) == 3


async def test_each_foreach_instance_has_its_own_entry(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    def fan(items: list[int]) -> dict[str, Any]:
        task = {
            "name": "fan",
            "task": "compute",
            "forEach": items,
            "params": {"x": "{{ item }}"},
            "cache": {"ttlSeconds": 60},
        }
        return {"dag": [task]}

    await run(fan([1, 2, 3]), tasks, cache, "run-1")
    second = await run(fan([3, 1, 4]), tasks, cache, "run-2")
    assert [e["x"] for e in executions] == [1, 2, 3, 4]
    cached = {i: second.tasks[f"fan[{i}]"].cached_from for i in range(3)}
    assert cached[0] is not None
    assert cached[0].task == "fan[2]"  # item 3 was the third instance in run-1
    assert cached[1] is not None
    assert cached[1].task == "fan[0]"
    assert cached[2] is None
    assert second.tasks["fan"].phase is TaskPhase.SUCCEEDED
    assert [o["x"] for o in second.tasks["fan"].outputs] == [3, 1, 4]


async def test_an_until_loop_is_cached_as_a_whole(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    body = {
        "dag": [
            {
                "name": "loop",
                "task": "grow",
                "params": {"step": "{{ iteration }}"},
                "until": "{{ outputs.n }} >= 3",
                "cache": {"ttlSeconds": 60},
            }
        ]
    }
    first = await run(body, tasks, cache, "run-1")
    second = await run(body, tasks, cache, "run-2")
    assert first.tasks["loop"].iterations == 3
    loop = second.tasks["loop"]
    assert loop.cached is True
    assert (loop.iterations, loop.outputs, loop.attempts) == (3, {"n": 3}, 0)
    assert len(executions) == 3
    other = {**body["dag"][0], "until": "{{ outputs.n }} >= 4"}  # another loop: a miss
    third = await run({"dag": [other]}, tasks, cache, "run-3")
    assert third.tasks["loop"].cached is None


async def test_a_custom_key_decides_what_counts(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    key = '"region=" + params.region'
    await run(one({"region": "eu", "trace": 1}, key=key), tasks, cache, "run-1")
    same = await run(one({"region": "eu", "trace": 2}, key=key), tasks, cache, "run-2")
    other = await run(one({"region": "us", "trace": 3}, key=key), tasks, cache, "run-3")
    assert same.tasks["c"].cached is True
    assert same.tasks["c"].outputs["trace"] == 1  # the recorded outputs
    assert other.tasks["c"].cached is None
    assert len(executions) == 2


async def test_a_custom_key_over_the_item_of_a_foreach(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    task = {
        "name": "fan",
        "task": "compute",
        "forEach": [{"id": 1, "at": "a"}, {"id": 1, "at": "b"}],
        "params": {"x": "{{ item.id }}", "at": "{{ item.at }}"},
        "cache": {"ttlSeconds": 60, "key": "string(item.id)"},
    }
    status = await run({"dag": [task], "parallelism": 1}, tasks, cache, "run-1")
    assert status.tasks["fan[1]"].cached_from is not None  # same id: the first's result
    assert len(executions) == 1


async def test_a_key_that_gives_no_string_fails_the_task(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    status = await run(one({"x": 1}, key="params.x"), tasks, cache, "run-1")
    task = status.tasks["c"]
    assert task.phase is TaskPhase.FAILED
    assert task.message == "Task c: cache.key: 'params.x' gave int 1, not a string"
    assert executions == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"key": "params.("}, "Task c: cache.key: not a CEL expression: 'params.('"),
        (
            {"key": "labels.team"},
            "Task c: cache.key: 'labels.team' reads 'labels'; it may read params",
        ),
        ({"key": "string(item)"}, "Task c: cache.key: 'string(item)' reads 'item'"),
    ],
)
def test_a_key_that_cannot_be_used_is_refused_at_submission(
    tasks: TaskRegistry, executions: list[dict[str, Any]], spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as refused:
        compile_workflow(WorkflowRequest.model_validate(one(**spec)), registry=tasks)
    assert str(refused.value).startswith(message)


def test_an_approval_task_takes_no_cache(tasks: TaskRegistry) -> None:
    body = {"dag": [{"name": "ok", "approval": {}, "cache": {"ttlSeconds": 60}}]}
    with pytest.raises(SpecError, match="Task ok: an approval task runs nothing to cache"):
        compile_workflow(WorkflowRequest.model_validate(body), registry=tasks)


@pytest.mark.parametrize("ttl", [0, 366 * 24 * 3600 + 1])
def test_a_ttl_out_of_range_does_not_fit_the_schema(ttl: int) -> None:
    with pytest.raises(ValidationError, match="ttlSeconds"):
        WorkflowRequest.model_validate(one(ttlSeconds=ttl))


async def test_a_downstream_task_hits_when_its_upstream_did(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    body = {
        "dag": [
            {"name": "a", "task": "compute", "params": {"x": 1}, "cache": {"ttlSeconds": 60}},
            {
                "name": "b",
                "task": "compute",
                "params": {"y": "{{ tasks.a.outputs.execution }}"},
                "cache": {"ttlSeconds": 60},
            },
            {"name": "plain", "task": "compute", "params": {"z": "{{ tasks.b.outputs.y }}"}},
        ]
    }
    await run(body, tasks, cache, "run-1")
    second = await run(body, tasks, cache, "run-2")
    assert second.tasks["a"].cached is True
    assert second.tasks["b"].cached is True
    assert second.tasks["plain"].cached is None  # no `cache`: it runs every time
    assert executions == [{"x": 1}, {"y": 1}, {"z": 1}, {"z": 1}]


async def test_identical_tasks_started_at_once_both_run(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    """No single flight (docs/cache.md): the second does not wait for the first."""
    entry = {"task": "compute", "params": {"x": 1}, "cache": {"ttlSeconds": 60}}
    body = {
        "workflow": [
            {"type": "parallel", "tasks": [{"name": "a", **entry}, {"name": "b", **entry}]}
        ]
    }
    status = await run(body, tasks, cache, "run-1")
    assert status.tasks["a"].cached is None
    assert status.tasks["b"].cached is None
    assert len(executions) == 2
    later = await run(body, tasks, cache, "run-2")
    assert later.tasks["a"].cached is True
    assert later.tasks["b"].cached is True


async def test_reused_outputs_count_against_the_runs_outputs_budget(
    tasks: TaskRegistry, executions: list[dict[str, Any]], cache: MemoryResultCache
) -> None:
    def body(*names: str) -> dict[str, Any]:
        entry = {"task": "compute", "params": {"pad": "x" * 600}, "cache": {"ttlSeconds": 60}}
        return {
            "workflow": [{"type": "sequential", "tasks": [{"name": n, **entry} for n in names]}]
        }

    await run(body("a"), tasks, cache, "run-1")
    status = await run(body("a", "b"), tasks, cache, "run-2", max_output_bytes=1024)
    assert status.tasks["a"].cached is True
    assert status.tasks["b"].phase is TaskPhase.FAILED
    assert status.tasks["b"].message == "the run's outputs would exceed 1 KiB"
    assert len(executions) == 1


class BrokenCache:
    """A cache whose store is down: every call fails."""

    async def get(self, key: str) -> CacheEntry | None:
        raise ConnectionError("down")

    async def put(self, key: str, entry: CacheEntry, *, ttl_seconds: int) -> None:
        raise ConnectionError("down")


async def test_a_cache_that_fails_never_fails_the_task(
    tasks: TaskRegistry, executions: list[dict[str, Any]]
) -> None:
    status = await run(one(), tasks, BrokenCache(), "run-1")
    assert status.tasks["c"].phase is TaskPhase.SUCCEEDED
    assert status.tasks["c"].cached is None
    assert len(executions) == 1


async def test_a_task_without_cache_never_looks(
    tasks: TaskRegistry, executions: list[dict[str, Any]]
) -> None:
    body = {"dag": [{"name": "c", "task": "compute", "params": {"x": 1}}]}
    status = await run(body, tasks, BrokenCache(), "run-1")
    assert status.tasks["c"].phase is TaskPhase.SUCCEEDED


class FakeJobs:
    """Stands in for the operator's Job executor: counts the Jobs it would create."""

    name = "job"

    def __init__(self) -> None:
        self.jobs: list[list[str] | None] = []

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        return False

    async def execute(self, attempt: Attempt) -> TaskResult:
        self.jobs.append(attempt.task.spec.args)
        return TaskResult(ok=True, outputs={"job": len(self.jobs)})


async def test_a_job_tasks_image_and_args_are_part_of_its_key(
    tasks: TaskRegistry, cache: MemoryResultCache
) -> None:
    jobs = FakeJobs()

    async def job_run(args: list[str], run_id: str) -> RunStatus:
        entry = {"name": "j", "image": "ghcr.io/acme/etl:1", "command": ["etl"], "args": args}
        body = {"dag": [{**entry, "cache": {"ttlSeconds": 60}}]}
        plan = compile_workflow(
            WorkflowRequest.model_validate(body),
            registry=tasks,
            policy=TaskPolicy(images=("ghcr.io/acme/*",)),
        )
        runner = WorkflowRunner(
            plan,
            executors={Executor.JOB: jobs},
            sink=RecordingSink(),
            cache=RunCache(cache, run_id=run_id),
        )
        return await runner.run()

    await job_run(["--day", "1"], "run-1")
    same = await job_run(["--day", "1"], "run-2")
    other = await job_run(["--day", "2"], "run-3")
    assert same.tasks["j"].cached_from is not None
    assert same.tasks["j"].outputs == {"job": 1}
    assert other.tasks["j"].cached is None
    assert jobs.jobs == [["--day", "1"], ["--day", "2"]]
