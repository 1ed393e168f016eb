"""Task ids of forEach instances (`NAME[i]`) and their short form (`NAME[a-b]`): what a
big run's folded status (models/folding.py) writes its members with."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator

_INSTANCE = re.compile(r"^(.+)\[(\d+)\]$")
_RANGE = re.compile(r"^(.+)\[(\d+)-(\d+)\]$")


def instance_of(task_id: str) -> tuple[str, int] | None:
    """(forEach task, index) of an instance id `NAME[i]`; None for a declared task."""
    found = _INSTANCE.match(task_id)
    return (found.group(1), int(found.group(2))) if found else None


def compress_ids(task_ids: Iterable[str]) -> list[str]:
    """Ids in a short form: declared tasks by name, runs of consecutive instances of one
    forEach as `NAME[a-b]`. Declared tasks come first, in the order given; instances
    after, by task and index: `expand_ids` gives that same order back."""
    names: list[str] = []
    indices: dict[str, list[int]] = defaultdict(list)
    for task_id in task_ids:
        instance = instance_of(task_id)
        if instance is None:
            names.append(task_id)
        else:
            indices[instance[0]].append(instance[1])
    for parent in sorted(indices):
        numbers = sorted(indices[parent])
        start = previous = numbers[0]
        for number in [*numbers[1:], None]:
            if number is not None and number == previous + 1:
                previous = number
                continue
            names.append(
                f"{parent}[{start}]" if start == previous else f"{parent}[{start}-{previous}]"
            )
            if number is not None:
                start = previous = number
    return names


def expand_ids(encoded: Iterable[str]) -> Iterator[str]:
    for part in encoded:
        found = _RANGE.match(part)
        if found is None:
            yield part
        else:
            parent, first, last = found.group(1), int(found.group(2)), int(found.group(3))
            yield from (f"{parent}[{index}]" for index in range(first, last + 1))


def part_size(part: str) -> tuple[str | None, int]:
    """(its forEach task, how many instances) of one part of the short form, without
    expanding it; (None, 1) for a declared task."""
    found = _RANGE.match(part)
    if found is not None:
        return found.group(1), int(found.group(3)) - int(found.group(2)) + 1
    instance = instance_of(part)
    return (instance[0], 1) if instance is not None else (None, 1)
