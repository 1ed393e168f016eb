"""`{{ ... }}` references in task params and conditions (design §3b).

    {{ tasks.NAME.outputs.KEY }}   an upstream task's output (a path: KEY.sub.0 ...)
    {{ tasks.NAME.outputs }}       all of its outputs (for a forEach task: the list of its
                                   instances' outputs, in order)
    {{ params.KEY }}               a run parameter given at submission
    {{ item }}, {{ item.KEY }}     inside a forEach task: its item
    {{ iteration }}                inside an until task: the iteration, from 0
    {{ outputs.KEY }}              in an until condition: the latest iteration's outputs

A string that is exactly one reference becomes the referenced value with its
JSON type; references inside a longer string are rendered as text (strings as
they are, anything else as JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

_REFERENCE = re.compile(r"\{\{\s*((?:(?!\{\{|\}\}).)*?)\s*\}\}")  # no braces inside
_TASK = re.compile(r"^tasks\.(?P<task>.+?)\.outputs(?:\.(?P<path>.+))?$")

Kind = Literal["task", "param", "item", "iteration", "outputs"]


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
    if head in ("params", "item", "outputs"):
        kind: Kind = {"params": "param", "item": "item", "outputs": "outputs"}[head]  # type: ignore[assignment]
        return Reference(text=text, kind=kind, path=path)
    if text == "iteration":
        return Reference(text=text, kind="iteration")
    match = _TASK.match(text)
    if match:
        task_path = tuple(match["path"].split(".")) if match["path"] else ()
        return Reference(text=text, kind="task", task=match["task"], path=task_path)
    raise TemplateError(f"Unknown reference: {{{{ {text} }}}}")


def references(value: Any) -> Iterator[Reference]:
    """Every reference in a value (strings inside dicts and lists included)."""
    if isinstance(value, str):
        for match in _REFERENCE.finditer(value):
            yield parse(match[1])
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


Resolver = Callable[[Reference], Any]


def render(value: Any, resolve: Resolver) -> Any:
    """The value with every reference replaced (see the module's docstring for types)."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value.strip())
        if whole:
            return resolve(parse(whole[1]))
        return _REFERENCE.sub(lambda match: _as_text(resolve(parse(match[1]))), value)
    if isinstance(value, dict):
        return {key: render(item, resolve) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, resolve) for item in value]
    return value


def substitute(source: str, name: Callable[[Reference, int], str]) -> tuple[str, list[Reference]]:
    """Replace each reference in an expression by a variable name; return both."""
    found: list[Reference] = []

    def replace(match: re.Match[str]) -> str:
        found.append(parse(match[1]))
        return name(found[-1], len(found) - 1)

    return _REFERENCE.sub(replace, source), found


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
