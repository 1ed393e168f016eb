"""`when` and `until` conditions: CEL, the expression language Kubernetes uses for CRD rules.

Evaluated by cel-python, a sandboxed interpreter (no Python `eval`, no access to
anything but the values bound to it). References are not pasted into the
expression text: each `{{ ... }}` becomes a variable bound to the referenced
JSON value, so no value can change what the expression means.

    "when":  "{{ tasks.profile.outputs.rows }} > 0"
    "until": "{{ outputs.remaining }} <= {{ params.threshold }}"

A condition comes from a request, so its cost is bounded (CEL's own answer to
the same problem is a cost budget): the interpreter counts the nodes it visits
and gives up past a number of steps or a deadline, whichever comes first; a
tree nested too deeply is refused when compiled; and `evaluate_async` runs the
interpreter in a worker thread, so a costly condition never stalls the event
loop (three nested `.all` over lists of 100 once blocked the API for 49 s).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError, Context, Evaluator

from stageflow.engine.templates import Reference, Resolver, TemplateError, substitute

DEFAULT_MAX_STEPS = 20_000
DEFAULT_MAX_SECONDS = 1.0
MAX_TREE_DEPTH = 300  # about 40 nested parentheses; deeper would exhaust Python's stack


class ConditionError(ValueError):
    """A condition that cannot be compiled, or whose evaluation failed."""


@dataclass(frozen=True)
class CostLimit:
    """How much one evaluation may cost: interpreter steps and wall-clock seconds."""

    max_steps: int = DEFAULT_MAX_STEPS
    max_seconds: float = DEFAULT_MAX_SECONDS


class _OverBudgetError(Exception):
    """Not a ValueError/TypeError, so cel-python's error bottling lets it through."""


class _Budget:
    def __init__(self, limit: CostLimit) -> None:
        self.limit = limit
        self.steps = 0
        self.deadline = time.monotonic() + limit.max_seconds

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limit.max_steps:
            raise _OverBudgetError(f"more than {self.limit.max_steps} evaluation steps")
        if self.steps % 64 == 0 and time.monotonic() > self.deadline:
            raise _OverBudgetError(f"longer than {self.limit.max_seconds:g}s")


class _BudgetedEvaluator(Evaluator):
    """cel-python's interpreter, charging every node it visits to a shared budget
    (macros such as `.all` evaluate their body in sub-evaluators: those share it)."""

    budget: _Budget

    def visit_children(self, tree: lark.Tree[Any]) -> list[Any]:
        self.budget.step()
        return super().visit_children(tree)

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        nested = _BudgetedEvaluator(ast, activation=self.activation)
        nested.budget = self.budget
        return nested


class Condition:
    """A compiled CEL condition and the references it reads."""

    _environment = celpy.Environment()

    def __init__(self, source: str, *, limit: CostLimit | None = None) -> None:
        self.source = source
        self.limit = limit or CostLimit()
        expression, self.references = substitute(source, lambda _, index: f"ref_{index}")
        try:
            self._ast = self._environment.compile(expression)
            depth = _depth(self._ast)
        except RecursionError:
            depth = MAX_TREE_DEPTH + 1
        except Exception as error:  # cel-python raises its parser's errors as they come
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConditionError(f"not a CEL expression: {source!r} ({first_line})") from None
        if depth > MAX_TREE_DEPTH:
            raise ConditionError(f"{source!r} is nested too deeply")
        self._runner = self._environment.program(self._ast)

    def bind(self, resolve: Resolver) -> dict[str, Any]:
        """The variables of one evaluation (read from the run's state: call on its loop)."""
        try:
            return {f"ref_{i}": json_to_cel(resolve(ref)) for i, ref in enumerate(self.references)}
        except TemplateError as error:
            raise ConditionError(str(error)) from None

    def run(self, bound: Context) -> bool:
        """Evaluate with `bound` variables, within the cost limit (may run in any thread)."""
        evaluator = _BudgetedEvaluator(self._ast, activation=self._runner.new_activation())
        evaluator.budget = _Budget(self.limit)
        try:
            result = evaluator.evaluate(bound)
        except CELEvalError as error:
            raise ConditionError(f"{self.source!r} failed: {error.args[0]}") from None
        except _OverBudgetError as error:
            raise ConditionError(f"{self.source!r} was stopped: it took {error}") from None
        except RecursionError:
            raise ConditionError(f"{self.source!r} is nested too deeply") from None
        if not isinstance(result, celtypes.BoolType):
            raise ConditionError(f"{self.source!r} gave {_describe(result)}, not true or false")
        return bool(result)

    def evaluate(self, resolve: Resolver) -> bool:
        return self.run(self.bind(resolve))

    async def evaluate_async(self, resolve: Resolver) -> bool:
        """Bind on the loop, evaluate in a worker thread: the loop stays free meanwhile."""
        bound = self.bind(resolve)
        return await asyncio.to_thread(self.run, bound)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def _depth(tree: lark.Tree[Any]) -> int:
    """The depth of a parse tree, walked without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))
    return deepest


def _describe(value: Any) -> str:
    return f"{type(value).__name__.removesuffix('Type').lower()} {value}"


__all__ = ["Condition", "ConditionError", "CostLimit", "Reference"]
