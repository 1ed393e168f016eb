"""CEL expressions that compute a string from named values: concurrency keys (over a run's
`params` and `labels`, or a task's rendered `params`).

Unlike `when`/`until` (engine/conditions.py), these see plain variables, not `{{ }}`
references, and must give a string. What an expression reads is checked when it is
compiled: a name that is not one of its variables is an ExpressionError (the plan makes
it a 400 at submission), as is an expression that does not parse. Evaluation is bounded
as a condition's is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celpy
import lark
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from stageflow.engine.conditions import (
    MAX_TREE_DEPTH,
    CostLimit,
    _Budget,
    _BudgetedEvaluator,
    _describe,
)

# CEL macros that bind a variable of their own: `params.tags.all(t, t != "")`
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


class ExpressionError(ValueError):
    """An expression that does not compile, reads an unknown name, fails or gives no string."""


class StringExpression:
    """A compiled CEL expression over `variables`, giving a string."""

    _environment = celpy.Environment()

    def __init__(
        self, source: str, *, variables: frozenset[str], where: str, limit: CostLimit | None = None
    ) -> None:
        self.source, self.where, self.limit = source, where, limit or CostLimit()
        try:
            self._ast = self._environment.compile(source)
        except Exception as error:  # cel-python raises its parser's errors as they come
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ExpressionError(f"{where}: not a CEL expression: {source!r} ({first})") from None
        names, bound, depth = _names(self._ast)
        if depth > MAX_TREE_DEPTH:
            raise ExpressionError(f"{where}: {source!r} is nested too deeply")
        unknown = sorted(names - bound - variables)
        if unknown:
            known = ", ".join(sorted(variables))
            raise ExpressionError(f"{where}: {source!r} reads {unknown[0]!r}; it may read {known}")
        self._program = self._environment.program(self._ast)

    def evaluate(self, values: Mapping[str, Any]) -> str:
        """The string; ExpressionError naming the expression when it fails or gives another type."""
        evaluator = _BudgetedEvaluator(self._ast, activation=self._program.new_activation())
        evaluator.budget = _Budget(self.limit)
        try:
            result = evaluator.evaluate(
                {name: json_to_cel(value) for name, value in values.items()}
            )
        except CELEvalError as error:
            raise ExpressionError(
                f"{self.where}: {self.source!r} failed: {error.args[0]}"
            ) from None
        except Exception as error:  # over budget, too deep
            raise ExpressionError(f"{self.where}: {self.source!r} was stopped: {error}") from None
        if not isinstance(result, str):  # celtypes.StringType is one; so is a plain str
            raise ExpressionError(
                f"{self.where}: {self.source!r} gave {_describe(result)}, not a string"
            )
        return str(result)


def _names(tree: lark.Tree[Any]) -> tuple[set[str], set[str], int]:
    """The identifiers an expression reads, those its macros bind, and its depth."""
    names: set[str] = set()
    bound: set[str] = set()
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if node.data == "ident" and node.children:
            names.add(str(node.children[0]))
        if node.data == "member_dot_arg" and len(node.children) >= 3:
            method = str(node.children[1])
            arguments = node.children[2]
            if method in _BINDING_MACROS and isinstance(arguments, lark.Tree):
                first = next(iter(arguments.children), None)
                for sub in first.iter_subtrees() if isinstance(first, lark.Tree) else ():
                    if sub.data == "ident" and sub.children:
                        bound.add(str(sub.children[0]))
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))
    return names, bound, deepest
