"""From a request to a plan: names resolved, every check made, stages turned into a DAG.

This is the only place a workflow is validated; the API (at submission) and the
operator (when it reconciles a WorkflowRun) both call `compile_workflow`, so the
two can never disagree about what is valid. Both forms become one DAG: a stage
waits for the whole previous stage, and a sequential stage chains its tasks.

Names: a task's id is its `name`, or else its task name. Explicit names must be
unique. A task name used again without a `name` gets the first free suffix
`-2`, `-3`, ... (`["task_a", "task_a"]` runs `task_a` and `task_a-2`).

References (`{{ tasks.NAME.outputs... }}`, see templates.py) are checked here too:
in the DAG form a reference adds the dependency; in the stages form it must
point to a task that finishes before this one starts (an earlier stage, or an
earlier task of the same sequential stage).
"""

from __future__ import annotations

import dataclasses
import graphlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from stageflow.engine.admission import check_task_rules, run_claims
from stageflow.engine.approval import schema_error
from stageflow.engine.cache_keys import CacheSpecError, compile_key
from stageflow.engine.conditions import Condition, ConditionError, CostLimit
from stageflow.engine.expressions import ExpressionError, StringExpression
from stageflow.engine.params import ParamsError, check_params
from stageflow.engine.policy import TaskPolicy
from stageflow.engine.registry import TaskRegistry
from stageflow.engine.templates import (
    DEFAULT_MAX_RENDERED_BYTES,
    Reference,
    TemplateError,
    is_single_reference,
    references,
)
from stageflow.models.request import (
    Executor,
    ItemCount,
    RunOptions,
    Stage,
    TaskSpec,
    WorkflowRequest,
)

_TASK_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")

_T = TypeVar("_T")

DEFAULT_MAX_TASKS = 2000
DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_OUTPUT_BYTES = 512 * 1024
DEFAULT_POLICY = TaskPolicy()
# What a WorkflowRun's spec may take of etcd's object: with the outputs (512 KiB) and a
# folded status, the object stays under 1 MiB (docs/big-runs.md).
DEFAULT_MAX_SPEC_BYTES = 384 * 1024
DEFAULT_MAX_INSTANCES = 12_000  # 2,000 declared tasks and 10,000 forEach instances


class SpecError(ValueError):
    """A request that fits the schema but cannot run; the API answers it with a 400."""


@dataclass(frozen=True)
class PlannedTask:
    """One node of the DAG: the task's normalised spec and what it waits for."""

    id: str
    spec: TaskSpec
    depends_on: tuple[str, ...]
    executor: Executor
    when: Condition | None = None
    until: Condition | None = None
    for_each: Reference | None = None  # when forEach is a reference rather than a list
    final: bool = False  # a `finally` task: runs once the main graph has ended
    cache_key: StringExpression | None = None  # `cache.key`, compiled (engine/cache_keys.py)


class Plan(BaseModel):
    """A validated workflow ready to run. `tasks` keeps declaration order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: WorkflowRequest
    tasks: dict[str, PlannedTask]
    max_items: int = DEFAULT_MAX_ITEMS
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_rendered_bytes: int = DEFAULT_MAX_RENDERED_BYTES
    condition_limit: CostLimit = CostLimit()  # what one condition or key evaluation may cost

    @property
    def options(self) -> RunOptions:
        return self.spec.options()


def compile_workflow(
    request: WorkflowRequest,
    *,
    registry: TaskRegistry,
    max_tasks: int = DEFAULT_MAX_TASKS,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    policy: TaskPolicy = DEFAULT_POLICY,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_rendered_bytes: int = DEFAULT_MAX_RENDERED_BYTES,
    condition_limit: CostLimit | None = None,
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES,
) -> Plan:
    """Normalise and validate `request`; raise `SpecError` naming the first problem
    (an image or service account `policy` does not allow is one)."""
    spec = normalise(request)
    stored = len(spec.model_dump_json(by_alias=True, exclude_none=True))
    if stored > max_spec_bytes:  # the WorkflowRun's spec (docs/big-runs.md: its budget)
        raise SpecError(
            f"Workflow too large to store: {stored} bytes normalised "
            f"(at most {max_spec_bytes}, STAGEFLOW_MAX_SPEC_BYTES)"
        )
    planned = _main(spec)
    final = _final(spec)
    _check_final_order(planned, final)
    planned += final
    if len(planned) > max_tasks:
        raise SpecError(
            f"Too many tasks: {len(planned)} (at most {max_tasks} per run, STAGEFLOW_MAX_TASKS)"
        )
    instances = sum(1 + _listed_items(node.spec) for node in planned)
    if instances > max_instances:
        raise SpecError(
            f"Too many task instances: {instances} tasks and forEach items "
            f"(at most {max_instances} per run, STAGEFLOW_MAX_TASK_INSTANCES)"
        )
    for node in planned:
        _check_task(node.spec, registry)
        refusal = policy.refusal(
            task_id=node.id, image=node.spec.image, service_account=node.spec.service_account_name
        )
        if refusal is not None:
            raise SpecError(refusal)
    tasks = {node.id: node for node in planned}
    for node in planned:
        for dependency in node.depends_on:
            if dependency not in tasks:
                raise SpecError(f"Unknown dependency: {node.id} depends on {dependency}")
    positions = _positions(spec.workflow) if spec.workflow is not None else None
    limit = condition_limit or CostLimit()
    _check_concurrency(spec, planned, limit)
    linked = [_link(node, tasks, positions, spec, max_items, limit) for node in planned]
    _check_acyclic(linked)
    resolved = {node.id: node for node in linked}
    return Plan(
        spec=spec,
        tasks=resolved,
        max_items=max_items,
        max_output_bytes=max_output_bytes,
        max_instances=max_instances,
        max_rendered_bytes=max_rendered_bytes,
        condition_limit=limit,
    )


def _check_concurrency(spec: WorkflowRequest, planned: list[PlannedTask], limit: CostLimit) -> None:
    """Run keys are evaluated now (params and labels are known); task keys are compiled and
    checked for what they read (their params are rendered when they run)."""
    try:
        run_claims(spec, limit=limit)
        for node in planned:
            if node.spec.concurrency:
                check_task_rules(node.id, node.spec.concurrency)
    except ExpressionError as error:
        raise SpecError(str(error)) from None


def _main(spec: WorkflowRequest) -> list[PlannedTask]:
    return _stages_to_dag(spec.workflow) if spec.workflow is not None else _dag(spec.dag or [])


def _final(spec: WorkflowRequest) -> list[PlannedTask]:
    entries = [entry for entry in spec.finally_ or [] if isinstance(entry, TaskSpec)]
    return [dataclasses.replace(node, final=True) for node in _dag(entries)]


def _check_final_order(main: list[PlannedTask], final: list[PlannedTask]) -> None:
    """`finally` tasks wait for the whole main graph, so `dependsOn` there names only other
    `finally` tasks, and no main task may wait for one."""
    main_ids = {node.id for node in main}
    final_ids = {node.id for node in final}
    for node in final:
        for dependency in node.depends_on:
            if dependency in main_ids:
                raise SpecError(
                    f"Finally task {node.id} depends on {dependency}: finally tasks run after "
                    "the whole main graph; their dependsOn names other finally tasks"
                )
    for node in main:
        for dependency in node.depends_on:
            if dependency in final_ids:
                raise SpecError(
                    f"Task {node.id} depends on finally task {dependency}: finally tasks run "
                    "after the main graph has ended"
                )


def _link(
    node: PlannedTask,
    tasks: dict[str, PlannedTask],
    positions: dict[str, _Position] | None,
    spec: WorkflowRequest,
    max_items: int,
    limit: CostLimit,
) -> PlannedTask:
    """Check a task's references and conditions; in the DAG form, add what they depend on."""
    task = node.spec
    when = _condition(node.id, "when", task.when, limit)
    until = _condition(node.id, "until", task.until, limit)
    try:
        cache_key = compile_key(node.id, task, limit=limit)
    except CacheSpecError as error:
        raise SpecError(str(error)) from None
    for_each = None
    if isinstance(task.for_each, str):
        for_each = _for_each_reference(node.id, task.for_each)
    elif task.for_each is not None and _listed_items(task) > max_items:
        raise SpecError(
            f"Task {node.id}: forEach has {_listed_items(task)} items "
            f"(at most {max_items}, STAGEFLOW_MAX_FOREACH_ITEMS)"
        )
    found = _safe(node.id, lambda: reads(task))
    upstream: list[str] = []
    for ref, where in found:
        _check_reference(node, ref, where, spec)
        if ref.kind == "phase" and ref.task is not None:
            if ref.task not in tasks:
                raise SpecError(f"Unknown reference: {ref} in task {node.id}")
            if tasks[ref.task].final and ref.task != node.id:
                upstream.append(ref.task)  # a finally task's phase is known once it ends
            continue
        if ref.kind != "task" or ref.task is None:
            continue
        if ref.task not in tasks:
            raise SpecError(f"Unknown reference: {ref} in task {node.id}")
        if ref.task == node.id:
            raise SpecError(f"Task {node.id} refers to its own outputs: {ref}")
        if tasks[ref.task].final and not node.final:
            raise SpecError(f"Task {node.id} refers to {ref}, a finally task, which runs after it")
        if node.final:
            if tasks[ref.task].final:  # among finally tasks a reference orders them
                upstream.append(ref.task)
            continue  # the main graph has ended before any finally task starts
        if positions is not None and not positions[ref.task].before(positions[node.id]):
            raise SpecError(
                f"Task {node.id} refers to {ref}, which does not finish before {node.id} "
                "starts (refer to an earlier stage)"
            )
        upstream.append(ref.task)
    depends_on = tuple(dict.fromkeys((*node.depends_on, *upstream)))
    return dataclasses.replace(
        node,
        depends_on=depends_on,
        executor=_executor_of(task, spec.executor),
        when=when,
        until=until,
        for_each=for_each,
        cache_key=cache_key,
    )


def _check_reference(node: PlannedTask, ref: Reference, where: str, spec: WorkflowRequest) -> None:
    task = node.spec
    if ref.kind == "item" and (task.for_each is None or where not in ("params",)):
        raise SpecError(
            f"{ref} in task {node.id}: {{{{ item }}}} is for the params of a forEach task"
        )
    if ref.kind == "iteration" and task.until is None:
        raise SpecError(f"{ref} in task {node.id}, which has no until")
    if ref.kind == "outputs" and where != "until":
        raise SpecError(f"{ref} in task {node.id}: {{{{ outputs }}}} is for until conditions")
    if ref.kind == "param" and ref.path and ref.path[0] not in spec.params:
        raise SpecError(f"Unknown run parameter: {ref} in task {node.id}")
    if ref.kind in ("run", "phase") and not node.final:
        raise SpecError(
            f"{ref} in task {node.id}: a run's outcome and tasks' phases are for finally tasks"
        )
    if ref.kind == "run" and ref.path not in (("phase",), ("failedTasks",)):
        raise SpecError(f"Unknown reference: {ref} in task {node.id} (run.phase, run.failedTasks)")


def _condition(task_id: str, kind: str, source: str | None, limit: CostLimit) -> Condition | None:
    if source is None:
        return None
    try:
        return _safe(task_id, lambda: Condition(source, limit=limit))
    except ConditionError as error:
        raise SpecError(f"Task {task_id}: {kind} is {error}") from None


def _listed_items(task: TaskSpec) -> int:
    """The items a task's forEach states in the request (0 for a reference or none)."""
    if isinstance(task.for_each, ItemCount):
        return task.for_each.count
    return len(task.for_each) if isinstance(task.for_each, list) else 0


def _for_each_reference(task_id: str, source: str) -> Reference:
    found = _safe(task_id, lambda: list(references(source)))
    if len(found) != 1 or not is_single_reference(source):
        raise SpecError(
            f"Task {task_id}: forEach takes a list, or one reference such as "
            "{{ tasks.NAME.outputs.KEY }}"
        )
    return found[0]


def _safe(task_id: str, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except TemplateError as error:
        raise SpecError(f"{error} in task {task_id}") from None


@dataclass(frozen=True)
class _Position:
    """Where a task stands in the stages form."""

    stage: int
    index: int
    sequential: bool

    def before(self, other: _Position) -> bool:
        """Whether this task finishes before `other` starts."""
        if self.stage != other.stage:
            return self.stage < other.stage
        return self.sequential and self.index < other.index


def _positions(stages: Iterable[Stage]) -> dict[str, _Position]:
    return {
        entry.name: _Position(stage=number, index=index, sequential=stage.type == "sequential")
        for number, stage in enumerate(stages)
        for index, entry in enumerate(stage.tasks)
        if isinstance(entry, TaskSpec) and entry.name is not None
    }


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
        if not _is_task_id(candidate):
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
        update: dict[str, object] = {"workflow": stages}
    else:
        update = {"dag": [name(entry) for entry in request.dag or []]}
    if request.finally_ is not None:
        update["finally_"] = [name(entry) for entry in request.finally_]
    return request.model_copy(update=update)


def _is_task_id(text: str) -> bool:
    return (
        0 < len(text) <= 63
        and text[0] not in "_.-"
        and all(character in _TASK_ID_CHARACTERS for character in text)
    )


EdgeKind = Literal["order", "data"]


def reads(task: TaskSpec) -> list[tuple[Reference, str]]:
    """Every reference a task reads, with where it stands (params, when, until, forEach):
    the one list both validation (`_link`, which adds them as edges) and the drawing use.
    Raises TemplateError for a reference that does not parse."""
    found = [(ref, "params") for ref in references(task.params)]
    found += [(ref, "when") for ref in references(task.when or "")]
    found += [(ref, "until") for ref in references(task.until or "")]
    if isinstance(task.for_each, str):
        found += [(ref, "forEach") for ref in references(task.for_each)]
    return found


def dependencies(spec: WorkflowRequest) -> dict[str, dict[str, EdgeKind]]:
    """Every task each task of a normalised spec waits for, and why: `order` (its stage's
    position or `dependsOn`) or `data` (only because it reads that task's outputs). These
    are the edges a drawing of the run shows: every edge the engine waits for, plus in the
    stages form the data a task reads from an earlier stage (which it waits for anyway)."""
    final = _final(spec)
    final_ids = {node.id for node in final}
    edges: dict[str, dict[str, EdgeKind]] = {}
    for node in _main(spec) + final:
        waits: dict[str, EdgeKind] = dict.fromkeys(node.depends_on, "order")
        for ref, _ in reads(node.spec):
            # a finally task waits for the whole main graph: only its own kind are edges
            if (
                ref.kind == "task"
                and ref.task is not None
                and ref.task != node.id
                and (not node.final or ref.task in final_ids)
            ):
                waits.setdefault(ref.task, "data")
        edges[node.id] = waits
    return edges


def _all_entries(request: WorkflowRequest) -> list[str | TaskSpec]:
    final = list(request.finally_ or [])
    if request.workflow is not None:
        return [entry for stage in request.workflow for entry in stage.tasks] + final
    return [*(request.dag or []), *final]


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
    if spec.approval is not None and spec.approval.inputs is not None:
        problem = schema_error(spec.approval.inputs)
        if problem is not None:
            raise SpecError(f"Task {spec.name}: approval inputs is not a JSON Schema: {problem}")
    if spec.task is not None and spec.image is None:
        definition = registry.get(spec.task)
        if definition is None:
            raise SpecError(f"Unknown task: {spec.task}")
        try:
            check_params(definition, spec.params, task_id=spec.name or spec.task)
        except ParamsError as error:
            raise SpecError(str(error)) from None
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
