"""A task's params checked against its Python signature when the run is submitted.

Without this, `{"task": "sleep", "params": {"secs": 1}}` was accepted and then
failed at run time with `TypeError: sleep_task() got an unexpected keyword
argument 'secs'`, naming an internal function. Now submission answers 400,
naming the task and the param: unknown names (unless the task takes
`**params`), missing required ones, and values whose JSON type does not fit the
parameter's type hint (checked by pydantic in strict mode, so `"1"` is no `int`).
A value that holds a `{{ reference }}` is checked only by name: its type is
known once it is rendered.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError

from stageflow.engine.registry import TaskDefinition
from stageflow.engine.templates import TemplateError, references

_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class ParamsError(ValueError):
    """Params that do not fit the task's signature; the message names the param."""


def check_params(definition: TaskDefinition, params: dict[str, Any], *, task_id: str) -> None:
    signature = _signature(definition.function)
    if signature is None:
        return
    accepted = {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind in _BY_KEYWORD
    }
    open_ended = any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in signature.parameters.values()
    )
    where = f"Task {task_id} (task {definition.name})"
    for name in params:
        if name not in accepted and not open_ended:
            takes = ", ".join(accepted) or "no params"
            raise ParamsError(f"{where}: unknown param {name!r} (it takes: {takes})")
    for name, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and name not in params:
            raise ParamsError(f"{where}: missing param {name!r}")
    adapters = _adapters(definition.function)
    for name, value in params.items():
        adapter = adapters.get(name)
        if adapter is None or _has_reference(value):
            continue
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as error:
            first = error.errors()[0]["msg"]
            raise ParamsError(f"{where}: param {name!r}: {first}") from None


@functools.lru_cache(maxsize=1024)
def _signature(function: Any) -> inspect.Signature | None:
    """The task function's signature, computed once per function: every task of every run
    is checked against it, and `inspect.signature` costs more than the rest of the check."""
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


@functools.cache
def _adapters(function: Any) -> dict[str, TypeAdapter[Any]]:
    """A validator per type-hinted parameter; a hint pydantic cannot check is left out."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # a hint that names what the task's module cannot resolve
        return {}
    adapters: dict[str, TypeAdapter[Any]] = {}
    for name, hint in hints.items():
        if name == "return":
            continue
        try:
            adapters[name] = TypeAdapter(hint)
        except Exception:  # pydantic cannot build a schema for every Python type
            continue
    return adapters


def _has_reference(value: Any) -> bool:
    try:
        return next(references(value), None) is not None
    except TemplateError:
        return True  # a bad reference is reported by the reference check, not here
