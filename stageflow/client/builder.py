"""Write a workflow in Python instead of JSON: tasks, stages, and `a >> b` for "b waits for a".

The builder only assembles the API's own request model (`WorkflowRequest`), so
what it produces is validated exactly as a JSON body would be, and
`client.submit()` takes it as it is:

    extract = Task("extract", "http_get", params={"url": "https://example.com"})
    report = Task("report", "echo", params={"status": extract.output("status")})
    extract >> report
    client.submit(Dag(report, name="nightly"))

    client.submit(Stages(parallel("task_a", "task_b"), sequential("task_c")))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypedDict, overload

from typing_extensions import Unpack

from stageflow.models import Executor, Stage, TaskSpec, WorkflowRequest
from stageflow.models.request import ItemCount


class Task:
    """One task: `name` is its id in the run; `task` the registered task (default: `name`)."""

    def __init__(
        self,
        name: str,
        task: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        retries: int = 0,
        retry_backoff_seconds: float = 1.0,
        timeout_seconds: float | None = None,
        executor: Executor | None = None,
        when: str | None = None,
        for_each: list[Any] | str | ItemCount | None = None,
        until: str | None = None,
        max_iterations: int | None = None,
        image: str | None = None,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.upstream: list[Task] = []
        # Validated now, so a mistake points at the line that made it.
        self._spec = TaskSpec(
            name=name,
            task=task if task is not None or image is not None else name,
            params=params or {},
            retries=retries,
            retry_backoff_seconds=retry_backoff_seconds,
            timeout_seconds=timeout_seconds,
            executor=executor,
            when=when,
            for_each=for_each,
            until=until,
            max_iterations=max_iterations,
            image=image,
            command=command,
            args=args,
            env=env,
            resources=resources,
        )

    def depends_on(self, *others: Task) -> Task:
        """This task waits for `others` (DAG form); returns itself."""
        for other in others:
            if other is self:
                raise ValueError(f"task {self.name} cannot depend on itself")
            if other not in self.upstream:
                self.upstream.append(other)
        return self

    @overload
    def __rshift__(self, other: Task) -> Task: ...
    @overload
    def __rshift__(self, other: Sequence[Task]) -> Sequence[Task]: ...
    def __rshift__(self, other: Task | Sequence[Task]) -> Task | Sequence[Task]:
        """`a >> b`: b waits for a; `a >> [b, c]`: both do. Returns the right side, to chain."""
        for downstream in [other] if isinstance(other, Task) else other:
            downstream.depends_on(self)
        return other

    def __rrshift__(self, other: Sequence[Task]) -> Task:
        """`[a, b] >> c`: c waits for both."""
        return self.depends_on(*other)

    def output(self, key: str | None = None) -> str:
        """A reference to this task's outputs (or one key of them), for another's params."""
        return f"{{{{ tasks.{self.name}.outputs{'.' + key if key else ''} }}}}"

    def spec(self) -> TaskSpec:
        if not self.upstream:
            return self._spec
        return self._spec.model_copy(update={"depends_on": [task.name for task in self.upstream]})

    def __repr__(self) -> str:
        return f"Task({self.name!r}, {self._spec.task!r})"


def parallel(*tasks: Task | str) -> Stage:
    """A stage whose tasks start together."""
    return _stage("parallel", tasks)


def sequential(*tasks: Task | str) -> Stage:
    """A stage whose tasks run one after another."""
    return _stage("sequential", tasks)


def _stage(kind: Literal["parallel", "sequential"], tasks: Iterable[Task | str]) -> Stage:
    entries: list[str | TaskSpec] = []
    for entry in tasks:
        if isinstance(entry, Task) and entry.upstream:
            raise ValueError(
                f"task {entry.name} has dependencies (>>): those belong to a Dag; "
                "stages already order their tasks"
            )
        entries.append(entry.spec() if isinstance(entry, Task) else entry)
    return Stage(type=kind, tasks=entries)


class RunOptions(TypedDict, total=False):
    """The run's options, as keyword arguments of `Stages` and `Dag` (the request's fields
    in snake_case; see docs/use.md)."""

    name: str
    labels: dict[str, str]
    params: dict[str, Any]
    fail_fast: bool
    parallelism: int
    timeout_seconds: float
    ttl_seconds_after_finished: int
    executor: Executor


class _Workflow:
    def __init__(self, **options: Unpack[RunOptions]) -> None:
        self.options = options

    def body(self) -> dict[str, Any]:
        """The JSON body of POST /workflow."""
        return self.request().model_dump(mode="json", by_alias=True, exclude_none=True)

    def request(self) -> WorkflowRequest:
        raise NotImplementedError


class Stages(_Workflow):
    """The stages form: `Stages(parallel(a, b), sequential(c), name=...)`."""

    def __init__(self, *stages: Stage, **options: Unpack[RunOptions]) -> None:
        super().__init__(**options)
        self.stages = list(stages)

    def request(self) -> WorkflowRequest:
        return WorkflowRequest(workflow=self.stages, **self.options)


class Dag(_Workflow):
    """The DAG form: the given tasks and every task they wait for, dependencies first."""

    def __init__(self, *tasks: Task, **options: Unpack[RunOptions]) -> None:
        super().__init__(**options)
        self.tasks = _with_upstream(tasks)

    def request(self) -> WorkflowRequest:
        return WorkflowRequest(dag=[task.spec() for task in self.tasks], **self.options)


def _with_upstream(tasks: Iterable[Task]) -> list[Task]:
    ordered: dict[int, Task] = {}
    visiting: set[int] = set()

    def visit(task: Task) -> None:
        if id(task) in ordered:
            return
        if id(task) in visiting:
            raise ValueError(f"dependency cycle through task {task.name}")
        visiting.add(id(task))
        for upstream in task.upstream:
            visit(upstream)
        ordered[id(task)] = task

    for task in tasks:
        visit(task)
    return list(ordered.values())
