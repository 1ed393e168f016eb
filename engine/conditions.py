"""`when` and `until` conditions: CEL, the expression language Kubernetes uses for CRD rules.

Evaluated by cel-python, a sandboxed interpreter (no Python `eval`, no access to
anything but the values bound to it). References are not pasted into the
expression text: each `{{ ... }}` becomes a variable bound to the referenced
JSON value, so no value can change what the expression means.

    "when":  "{{ tasks.profile.outputs.rows }} > 0"
    "until": "{{ outputs.remaining }} <= {{ params.threshold }}"
"""

from __future__ import annotations

from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from stageflow.engine.templates import Reference, Resolver, TemplateError, substitute


class ConditionError(ValueError):
    """A condition that cannot be compiled, or whose evaluation failed."""


class Condition:
    """A compiled CEL condition and the references it reads."""

    _environment = celpy.Environment()

    def __init__(self, source: str) -> None:
        self.source = source
        expression, self.references = substitute(source, lambda _, index: f"ref_{index}")
        try:
            self._program = self._environment.program(self._environment.compile(expression))
        except Exception as error:  # cel-python raises its parser's errors as they come
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConditionError(f"not a CEL expression: {source!r} ({first_line})") from None

    def evaluate(self, resolve: Resolver) -> bool:
        try:
            bound = {f"ref_{i}": json_to_cel(resolve(ref)) for i, ref in enumerate(self.references)}
        except TemplateError as error:
            raise ConditionError(str(error)) from None
        try:
            result = self._program.evaluate(bound)
        except CELEvalError as error:
            raise ConditionError(f"{self.source!r} failed: {error.args[0]}") from None
        if not isinstance(result, celtypes.BoolType):
            raise ConditionError(f"{self.source!r} gave {_describe(result)}, not true or false")
        return bool(result)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def _describe(value: Any) -> str:
    return f"{type(value).__name__.removesuffix('Type').lower()} {value}"


__all__ = ["Condition", "ConditionError", "Reference"]
