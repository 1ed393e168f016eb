"""`{{ ... }}` references in task params and conditions (docs/request.md).

    {{ tasks.NAME.outputs.KEY }}   an upstream task's output (a path: KEY.sub.0 ...)
    {{ tasks.NAME.outputs }}       all of its outputs (for a forEach task: the list of its
                                   instances' outputs, in order)
    {{ params.KEY }}               a run parameter given at submission
    {{ item }}, {{ item.KEY }}     inside a forEach task: its item
    {{ iteration }}                inside an until task: the iteration, from 0
    {{ outputs.KEY }}              in an until condition: the latest iteration's outputs
    {{ tasks.NAME.phase }}         in a finally task: a task's phase (Succeeded, Failed, ...)
    {{ run.phase }}                in a finally task: the main graph's outcome
    {{ run.failedTasks }}          in a finally task: the ids of the main tasks that failed

A string that is exactly one reference becomes the referenced value with its
JSON type; references inside a longer string are rendered as text (strings as
they are, anything else as JSON).

Every string here comes from a request, so scanning is linear in its length
(`str.find`, no backtracking regex: a `{{` followed by thousands of spaces once
froze the event loop for minutes), and rendering stops once its output passes a
budget (a few hundred references to a large value must not render to gigabytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_MAX_RENDERED_BYTES = 256 * 1024
_OPEN, _CLOSE = "{{", "}}"
_OUTPUTS = ".outputs"
_PHASE = ".phase"

Kind = Literal["task", "param", "item", "iteration", "outputs", "run", "phase"]


class TemplateError(ValueError):
    """A reference that cannot be parsed or resolved; the message names it."""


@dataclass(frozen=True)
class Reference:
    text: str
    kind: Kind
    path: tuple[str, ...] = ()
    task: str | None = None

    def __str__(self) -> str:
        return f"{{{{ {self.text} }}}}"


def parse(text: str) -> Reference:
    head, _, rest = text.partition(".")
    path = tuple(rest.split(".")) if rest else ()
    if head in ("params", "item", "outputs", "run"):
        kind: Kind = {"params": "param", "item": "item", "outputs": "outputs", "run": "run"}[head]  # type: ignore[assignment]
        return Reference(text=text, kind=kind, path=path)
    if text == "iteration":
        return Reference(text=text, kind="iteration")
    task_reference = _task_reference(text)
    if task_reference is not None:
        return task_reference
    raise TemplateError(f"Unknown reference: {{{{ {text} }}}}")


def _task_reference(text: str) -> Reference | None:
    """`tasks.NAME.outputs[.PATH]`: NAME is up to the first `.outputs` that ends the text
    or is followed by a path (NAME may itself hold dots); or `tasks.NAME.phase`."""
    if not text.startswith("tasks."):
        return None
    if text.endswith(_PHASE) and len(text) > len("tasks.") + len(_PHASE) and _OUTPUTS not in text:
        return Reference(text=text, kind="phase", task=text[len("tasks.") : -len(_PHASE)])
    at = text.find(_OUTPUTS, len("tasks.") + 1)
    while at != -1:
        rest = text[at + len(_OUTPUTS) :]
        if not rest or (rest.startswith(".") and len(rest) > 1):
            path = tuple(rest[1:].split(".")) if rest else ()
            return Reference(text=text, kind="task", task=text[len("tasks.") : at], path=path)
        at = text.find(_OUTPUTS, at + 1)
    return None


@dataclass(frozen=True)
class _Match:
    """One `{{ ... }}` in a string: where it starts and ends, and the text inside."""

    start: int
    end: int
    inner: str


def _scan(text: str) -> Iterator[_Match]:
    """Each `{{ inner }}` from left to right, in time linear in `len(text)`.

    `inner` holds no `{{`, `}}` or line break and is stripped of surrounding white
    space; where `{{` repeats (`{{{ x }}`), the match starts at the last `{{`
    that leaves a valid inside, as the leftmost-match rule of a regex would."""
    position = 0
    while True:
        start = text.find(_OPEN, position)
        if start == -1:
            return
        end = text.find(_CLOSE, start + 2)
        if end == -1:
            return
        last_open = text.rfind(_OPEN, start, end)  # the inside of a match holds no `{{`
        candidates = (last_open - 1, last_open) if text[last_open - 1 : last_open] == "{" else ()
        for candidate in candidates or (last_open,):
            if candidate < start:
                continue
            inner = text[candidate + 2 : end].strip()
            if "\n" not in inner:
                yield _Match(start=candidate, end=end + 2, inner=inner)
                break
        position = end + 2


def _whole(text: str) -> _Match | None:
    """The one reference `text` consists of (white space around it aside), if it does."""
    stripped = text.strip()
    first = next(_scan(stripped), None)
    if first is not None and first.start == 0 and first.end == len(stripped):
        return first
    return None


def is_single_reference(text: str) -> bool:
    return _whole(text) is not None


def references(value: Any) -> Iterator[Reference]:
    """Every reference in a value (strings inside dicts and lists included)."""
    if isinstance(value, str):
        for match in _scan(value):
            yield parse(match.inner)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


Resolver = Callable[[Reference], Any]


def render(value: Any, resolve: Resolver, *, max_bytes: int = DEFAULT_MAX_RENDERED_BYTES) -> Any:
    """The value with every reference replaced (see the module's docstring for types).

    Raise TemplateError once the references have put more than `max_bytes` (as JSON
    text) into the result: the same large value referenced many times is caught
    after `max_bytes` of work, not after copying it each time."""
    budget = _Budget(max_bytes)
    return _render(value, resolve, budget)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise TemplateError(
                f"rendered params exceed {self.limit} bytes (STAGEFLOW_MAX_RENDERED_BYTES)"
            )


def _render(value: Any, resolve: Resolver, budget: _Budget) -> Any:
    if isinstance(value, str):
        whole = _whole(value)
        if whole is not None:
            resolved = resolve(parse(whole.inner))
            budget.spend(len(_as_text(resolved)))
            return resolved
        return _substitute_text(value, lambda match: _spend(budget, resolve(parse(match.inner))))
    if isinstance(value, dict):
        return {key: _render(item, resolve, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, resolve, budget) for item in value]
    return value


def _spend(budget: _Budget, value: Any) -> str:
    text = _as_text(value)
    budget.spend(len(text))
    return text


def _substitute_text(text: str, replace: Callable[[_Match], str]) -> str:
    parts: list[str] = []
    position = 0
    for match in _scan(text):
        parts += (text[position : match.start], replace(match))
        position = match.end
    parts.append(text[position:])
    return "".join(parts)


def substitute(source: str, name: Callable[[Reference, int], str]) -> tuple[str, list[Reference]]:
    """Replace each reference in an expression by a variable name; return both."""
    found: list[Reference] = []

    def replace(match: _Match) -> str:
        found.append(parse(match.inner))
        return name(found[-1], len(found) - 1)

    return _substitute_text(source, replace), found


def lookup(value: Any, path: tuple[str, ...], *, what: str) -> Any:
    """Follow a dotted path into JSON: keys of objects, indexes of lists."""
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise TemplateError(f"{what} has no {key!r}")
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
