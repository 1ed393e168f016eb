"""From a request to a plan: names resolved, every check made, stages turned into a DAG.

This is the only place a workflow is validated; the API (at submission) and the
operator (when it reconciles a WorkflowRun) both call `compile_workflow`, so the
two can never disagree about what is valid. Both forms become one DAG: a stage
waits for the whole previous stage, and a sequential stage chains its tasks.

Names: a task's id is its `name`, or else its task name. Explicit names must be
unique. A task name used again without a `name` gets the first free suffix
`-2`, `-3`, ... (`["task_a", "task_a"]` runs `task_a` and `task_a-2`).
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from stageflow.engine.models import Executor, RunOptions, Stage, TaskSpec, WorkflowRequest
from stageflow.engine.registry import TaskRegistry

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")

DEFAULT_MAX_TASKS = 1000


class SpecError(ValueError):
    """A request that fits the schema but cannot run; the API answers it with a 400."""


@dataclass(frozen=True)
class PlannedTask:
    """One node of the DAG: the task's normalised spec and what it waits for."""

    id: str
    spec: TaskSpec
    depends_on: tuple[str, ...]
    executor: Executor


class Plan(BaseModel):
    """A validated workflow ready to run. `tasks` keeps declaration order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: WorkflowRequest
    tasks: dict[str, PlannedTask]

    @property
    def options(self) -> RunOptions:
        return self.spec.options()


def compile_workflow(
    request: WorkflowRequest,
    *,
    registry: TaskRegistry,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Plan:
    """Normalise and validate `request`; raise `SpecError` naming the first problem."""
    spec = normalise(request)
    planned = _stages_to_dag(spec.workflow) if spec.workflow is not None else _dag(spec.dag or [])
    if len(planned) > max_tasks:
        raise SpecError(f"Too many tasks: {len(planned)} (at most {max_tasks} per run)")
    for node in planned:
        _check_task(node.spec, registry)
    tasks = {node.id: node for node in planned}
    for node in planned:
        for dependency in node.depends_on:
            if dependency not in tasks:
                raise SpecError(f"Unknown dependency: {node.id} depends on {dependency}")
    _check_acyclic(tasks.values())
    default = spec.executor
    resolved = {
        node.id: PlannedTask(
            id=node.id,
            spec=node.spec,
            depends_on=node.depends_on,
            executor=_executor_of(node.spec, default),
        )
        for node in planned
    }
    return Plan(spec=spec, tasks=resolved)


def normalise(request: WorkflowRequest) -> WorkflowRequest:
    """Every task as an object with its id in `name`; raise on duplicate explicit names."""
    entries = _all_entries(request)
    explicit: set[str] = set()
    for entry in entries:
        if isinstance(entry, TaskSpec) and entry.name is not None:
            if entry.name in explicit:
                raise SpecError(f"Duplicate task name: {entry.name}")
            explicit.add(entry.name)
    taken = set(explicit)

    def name(entry: str | TaskSpec) -> TaskSpec:
        if isinstance(entry, TaskSpec) and entry.name is not None:
            return entry
        spec = TaskSpec(task=entry) if isinstance(entry, str) else entry
        base = spec.task or ""
        candidate, suffix = base, 2
        while candidate in taken:
            candidate, suffix = f"{base}-{suffix}", suffix + 1
        if not _TASK_ID.match(candidate):
            raise SpecError(
                f"Task {base!r} cannot be used as a task id; give it a `name` "
                "(letters, digits, '_', '.', '-'; at most 63 characters)"
            )
        taken.add(candidate)
        return spec.model_copy(update={"name": candidate})

    if request.workflow is not None:
        stages = [
            Stage(type=stage.type, tasks=[name(entry) for entry in stage.tasks])
            for stage in request.workflow
        ]
        return request.model_copy(update={"workflow": stages})
    return request.model_copy(update={"dag": [name(entry) for entry in request.dag or []]})


def _all_entries(request: WorkflowRequest) -> list[str | TaskSpec]:
    if request.workflow is not None:
        return [entry for stage in request.workflow for entry in stage.tasks]
    return list(request.dag or [])


def _stages_to_dag(stages: Iterable[Stage]) -> list[PlannedTask]:
    planned: list[PlannedTask] = []
    previous: tuple[str, ...] = ()
    for stage in stages:
        ids: list[str] = []
        for entry in stage.tasks:
            assert isinstance(entry, TaskSpec)
            assert entry.name is not None
            if stage.type == "sequential" and ids:
                waits_for: tuple[str, ...] = (ids[-1],)
            else:
                waits_for = previous
            planned.append(_node(entry, waits_for))
            ids.append(entry.name)
        previous = (ids[-1],) if stage.type == "sequential" else tuple(ids)
    return planned


def _dag(entries: Iterable[TaskSpec]) -> list[PlannedTask]:
    return [_node(entry, tuple(dict.fromkeys(entry.depends_on or ()))) for entry in entries]


def _node(spec: TaskSpec, depends_on: tuple[str, ...]) -> PlannedTask:
    assert spec.name is not None
    return PlannedTask(
        id=spec.name, spec=spec, depends_on=depends_on, executor=spec.executor or Executor.INPROCESS
    )


def _check_task(spec: TaskSpec, registry: TaskRegistry) -> None:
    if spec.task is not None and spec.image is None and spec.task not in registry:
        raise SpecError(f"Unknown task: {spec.task}")
    if spec.image is not None and spec.executor == Executor.INPROCESS:
        raise SpecError(f"Task {spec.name}: a task with an `image` runs as a Job (executor: job)")


def _executor_of(spec: TaskSpec, default: Executor) -> Executor:
    if spec.image is not None:
        return Executor.JOB
    return spec.executor or default


def _check_acyclic(tasks: Iterable[PlannedTask]) -> None:
    sorter = graphlib.TopologicalSorter({task.id: task.depends_on for task in tasks})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = error.args[1]
        raise SpecError(f"Dependency cycle: {' -> '.join(cycle)}") from None
