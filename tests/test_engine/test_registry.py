"""Registering tasks: the decorator's two forms, entry points, modules, conflicts."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from stageflow.engine import TaskRegistry, registry, task
from stageflow.engine.config import EngineSettings


def test_decorator_forms_register_in_the_process_registry() -> None:
    @task
    def plain_decorated() -> bool:
        """Plain form."""
        return True

    @task("renamed_task")
    async def named() -> bool:
        return True

    assert registry.get("plain_decorated") is not None
    definition = registry.get("renamed_task")
    assert definition is not None
    assert definition.is_async
    assert definition.function is named


def test_two_functions_cannot_share_a_name(tasks: TaskRegistry) -> None:
    with pytest.raises(ValueError, match="'task_a' is already registered"):
        tasks.register(lambda: True, "task_a")


def test_modules_named_in_settings_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEFLOW_TASK_MODULES", "tests.fixtures.extra_tasks, ")
    settings = EngineSettings()
    assert settings.task_modules == ["tests.fixtures.extra_tasks"]
    registry.load(settings.task_modules)
    definition = registry.get("extra_greet")
    assert definition is not None
    assert definition.description == "Say hello (a user task loaded from a module)."


def test_entry_points_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = TaskRegistry()
    loaded: list[str] = []
    point = EntryPoint(name="mine", value="my_tasks", group="stageflow.tasks")
    module = sys.modules[
        "stageflow.engine.registry"
    ]  # the package exports an instance by that name
    monkeypatch.setattr(
        module, "entry_points", lambda group: [point] if group == "stageflow.tasks" else []
    )
    monkeypatch.setattr(EntryPoint, "load", lambda self: loaded.append(self.value))
    fresh.load()
    fresh.load()
    assert loaded == ["my_tasks"]


def test_builtins_arrive_through_the_installed_entry_point() -> None:
    registry.load()
    assert {"task_a", "task_b", "task_c", "task_d", "sleep", "fail", "echo", "http_get"} <= {
        definition.name for definition in registry
    }
