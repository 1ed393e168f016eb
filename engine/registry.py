"""The task registry: names users write in a request, mapped to Python callables.

A task is registered with `@task` or `@task("name")`. Tasks are discovered from
the `stageflow.tasks` entry-point group (how installed packages, including the
built-ins, contribute tasks) and from the modules named in
`STAGEFLOW_TASK_MODULES` (how a deployment adds its own without packaging).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, overload

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "stageflow.tasks"

TaskFunction = Callable[..., Any]


@dataclass(frozen=True)
class TaskDefinition:
    """A registered task: its name, its callable and what `GET /tasks` shows of it."""

    name: str
    function: TaskFunction
    description: str = ""
    is_async: bool = False
    parameters: tuple[str, ...] = field(default_factory=tuple)


class TaskRegistry:
    """Task name → definition. One process-wide instance serves the API and the operator."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDefinition] = {}
        self._loaded_sources: set[str] = set()

    def register(self, function: TaskFunction, name: str | None = None) -> TaskDefinition:
        task_name = name or function.__name__
        existing = self._tasks.get(task_name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"Task {task_name!r} is already registered")
        doc = inspect.getdoc(function) or ""
        definition = TaskDefinition(
            name=task_name,
            function=function,
            description=doc.splitlines()[0] if doc else "",
            is_async=inspect.iscoroutinefunction(function),
            parameters=tuple(inspect.signature(function).parameters),
        )
        self._tasks[task_name] = definition
        return definition

    def get(self, name: str) -> TaskDefinition | None:
        return self._tasks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(sorted(self._tasks.values(), key=lambda task: task.name))

    def __len__(self) -> int:
        return len(self._tasks)

    def load(self, modules: Iterable[str] = ()) -> None:
        """Import the entry-point group and the given modules; their `@task`s register."""
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            self._import_once(entry_point.value, entry_point.load)
        modules = list(modules)
        if modules and os.getcwd() not in sys.path:
            # Like uvicorn's app dir: modules beside where stageflow was started are found.
            # Appended, so nothing there can shadow the standard library.
            sys.path.append(os.getcwd())
        for module in modules:
            self._import_once(module, functools.partial(importlib.import_module, module))

    def _import_once(self, source: str, load: Callable[[], object]) -> None:
        if source in self._loaded_sources:
            return
        load()
        self._loaded_sources.add(source)
        logger.debug("loaded tasks from %s", source)


registry = TaskRegistry()


@overload
def task(name_or_function: TaskFunction) -> TaskFunction: ...


@overload
def task(name_or_function: str | None = None) -> Callable[[TaskFunction], TaskFunction]: ...


def task(
    name_or_function: str | TaskFunction | None = None,
) -> TaskFunction | Callable[[TaskFunction], TaskFunction]:
    """Register a task in the process-wide registry: `@task` or `@task("name")`."""
    if callable(name_or_function):
        registry.register(name_or_function)
        return name_or_function

    def decorate(function: TaskFunction) -> TaskFunction:
        registry.register(function, name_or_function)
        return function

    return decorate
