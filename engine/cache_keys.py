"""Cache keys (engine/cache.py): a task's `cache` checked at submission, and the key of
one run of it computed when it is about to run.

The key, a SHA-256 of canonical JSON (sorted keys, no spaces), covers:
- by default: the registered task (`task`; a task with only an `image`: the image), its
  rendered params, a Job task's `image`/`command`/`args`, `version`, a forEach instance's
  `item`, and an `until` loop's condition and `maxIterations` (they decide what the loop
  ends with);
- with `cache.key`: the string the CEL expression gives (over `params`, the rendered
  params, and `item` in a forEach task), with `task` (or `image`) and `version`.

Apart from engine/cache.py because the plan imports it, and the cache imports what imports
the plan.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import TYPE_CHECKING, Any

from stageflow.engine.conditions import CostLimit
from stageflow.engine.expressions import ExpressionError, StringExpression
from stageflow.models.request import Executor, TaskSpec

if TYPE_CHECKING:
    from stageflow.engine.plan import PlannedTask


class CacheSpecError(ValueError):
    """A `cache` that cannot be used: the plan makes it a 400 naming the task."""


class CacheKeyError(ValueError):
    """A `cache.key` that failed when evaluated, or gave no string: the task fails."""


KEY_FORMAT = 1  # part of every key: a change of what a key covers never meets old entries
KEY_VARIABLES = frozenset({"params"})
FOREACH_KEY_VARIABLES = frozenset({"params", "item"})


def compile_key(task_id: str, spec: TaskSpec, *, limit: CostLimit) -> StringExpression | None:
    """Check a task's `cache` at submission; its key expression compiled, if it has one."""
    if spec.cache is None:
        return None
    if spec.approval is not None:
        raise CacheSpecError(f"Task {task_id}: an approval task runs nothing to cache")
    if spec.cache.key is None:
        return None
    variables = FOREACH_KEY_VARIABLES if spec.for_each is not None else KEY_VARIABLES
    try:
        return StringExpression(
            spec.cache.key, variables=variables, where=f"Task {task_id}: cache.key", limit=limit
        )
    except ExpressionError as error:
        raise CacheSpecError(str(error)) from None


def digest(material: dict[str, Any]) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces), in hex."""
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def key_of(node: PlannedTask, params: dict[str, Any], *, item: Any, instance: bool) -> str:
    """The cache key of one run of `node` (an instance's, when `instance`) with `params`."""
    spec = node.spec
    assert spec.cache is not None
    material: dict[str, Any] = {"format": KEY_FORMAT, "version": spec.cache.version}
    if spec.task is not None:
        material["task"] = spec.task
    else:
        material["image"] = spec.image
    if node.cache_key is not None:
        values = {"params": params, "item": item} if instance else {"params": params}
        try:
            material["key"] = await asyncio.to_thread(node.cache_key.evaluate, values)
        except ExpressionError as error:
            raise CacheKeyError(str(error)) from None
        return digest(material)
    material["params"] = params
    if node.executor is Executor.JOB:  # what the container is, when the task names one
        container = {"image": spec.image, "command": spec.command, "args": spec.args}
        material.update({field: value for field, value in container.items() if value})
    if instance:
        material["item"] = item
    if spec.until is not None:
        material.update(until=spec.until, maxIterations=spec.iteration_limit)
    return digest(material)
