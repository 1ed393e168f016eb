"""Concurrency keys and the order of admission: what a run (or a task) must hold to start.

Pure: the hosts keep the holdings (the leading operator in memory, rebuilt from the runs it
observes; the local backend in Redis or memory: store/admission.py) and ask this module
which keys a run needs and where it stands in line.

Order: higher `priority` first, then earlier submission; and a run's priority is worth
`aging_seconds` of waiting per point, so `score = submitted - priority * aging` (lower
goes first) is the whole rule, and fixed once the run is submitted: a low-priority run is
overtaken only by runs of higher priority submitted less than (difference x aging) after
it, so it is never starved for ever.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stageflow.engine.conditions import CostLimit
from stageflow.engine.expressions import ExpressionError, StringExpression
from stageflow.models.request import ConcurrencyRule, WorkflowRequest

RUN_VARIABLES = frozenset({"params", "labels"})
TASK_VARIABLES = frozenset({"params"})
DEFAULT_AGING_SECONDS = 60.0
MAX_KEY_LENGTH = 253


@dataclass(frozen=True)
class Claim:
    """One key to hold: `run:` or `task:` before the expression's value, so the runs' and
    the tasks' limits never share a count."""

    key: str
    max: int
    strategy: str = "queue"


def _claims(
    kind: str,
    rules: Sequence[ConcurrencyRule],
    values: Mapping[str, Any],
    *,
    where: str,
    variables: frozenset[str],
    limit: CostLimit | None,
) -> list[Claim]:
    claims = []
    for index, rule in enumerate(rules):
        place = f"{where}concurrency[{index}].key"
        value = StringExpression(rule.key, variables=variables, where=place, limit=limit).evaluate(
            values
        )
        if not value or len(value) > MAX_KEY_LENGTH:
            raise ExpressionError(f"{place}: gave {len(value)} characters (1 to {MAX_KEY_LENGTH})")
        claims.append(Claim(f"{kind}:{value}", rule.max, rule.strategy))
    return claims


def run_claims(spec: WorkflowRequest, *, limit: CostLimit | None = None) -> list[Claim]:
    """The keys a run must hold, from its params and labels (known at submission, so an
    expression that fails is an ExpressionError then: a 400)."""
    values = {"params": spec.params, "labels": spec.labels}
    return _claims(
        "run", spec.concurrency or [], values, where="", variables=RUN_VARIABLES, limit=limit
    )


def check_task_rules(task_id: str, rules: Sequence[ConcurrencyRule]) -> None:
    """What can be checked before a task's params are rendered: each key compiles and reads
    nothing but `params`; tasks wait in line (`queue`) only."""
    for index, rule in enumerate(rules):
        place = f"Task {task_id}: concurrency[{index}]"
        StringExpression(rule.key, variables=TASK_VARIABLES, where=f"{place}.key")
        if rule.strategy != "queue":
            raise ExpressionError(f"{place}.strategy: a task waits in line (queue) only")


def task_claims(
    task_id: str,
    rules: Sequence[ConcurrencyRule],
    params: Mapping[str, Any],
    *,
    limit: CostLimit | None = None,
) -> list[Claim]:
    """The keys one attempt of a task must hold, from its rendered params."""
    return _claims(
        "task",
        rules,
        {"params": dict(params)},
        where=f"Task {task_id}: ",
        variables=TASK_VARIABLES,
        limit=limit,
    )


def order_score(
    priority: int, submitted_at: datetime, *, aging_seconds: float = DEFAULT_AGING_SECONDS
) -> float:
    """Lower goes first: the submission time, earlier by `aging_seconds` per priority point."""
    return submitted_at.timestamp() - priority * aging_seconds


@dataclass(frozen=True, order=True)
class Place:
    """Where a holder waits: its position in the line of `key` (1: next; 0: not in line
    yet, admission has not opened: a new leader's first seconds)."""

    position: int
    key: str


class Admission(Protocol):
    """Who holds which keys, and who waits for them: the one answer to "may this start?".
    The leading operator keeps it in memory (MemoryAdmission), rebuilt from the runs it
    observes; the local backend in Redis (store/redis_admission.py) or memory."""

    async def acquire(
        self, holder: str, claims: Sequence[Claim], order: float, *, force: bool = False
    ) -> Place | None:
        """Take every claim or none. None: taken. Else the holder stays in line (by
        `order`, lower first) and the worst place it has is returned. `force` takes them
        whatever the counts: a holder that held them before a restart."""
        ...

    async def release(self, holder: str, claims: Sequence[Claim]) -> None:
        """Give the claims back, or leave their lines."""
        ...

    async def holders(self, key: str) -> list[str]:
        """Who holds `key`, earliest first."""
        ...

    async def changed(self) -> None:
        """Return when something may have changed: a release here, or (a store that cannot
        tell) after a short poll. Callers bound the wait themselves."""
        ...


class MemoryAdmission:
    """Holdings in one process: the leading operator's (the only one that admits, and
    which re-learns who holds what from the runs it resumes), and the local backend's
    without Redis. `grace_seconds`: no new admission for that long after it is made, so
    the runs a new leader resumes have taken back their keys before any queued run is
    let in."""

    def __init__(self, *, grace_seconds: float = 0.0) -> None:
        self._holders: dict[str, dict[str, int]] = defaultdict(dict)  # key -> holder -> order
        self._waiting: dict[str, dict[str, float]] = defaultdict(dict)
        self._taken = 0
        self._change: asyncio.Event | None = None
        self._grace = grace_seconds
        try:  # on the loop's clock, from now (or from the first call, made outside a loop)
            self._open_at: float | None = asyncio.get_running_loop().time() + grace_seconds
        except RuntimeError:
            self._open_at = None

    async def acquire(
        self, holder: str, claims: Sequence[Claim], order: float, *, force: bool = False
    ) -> Place | None:
        now = asyncio.get_running_loop().time()
        if self._open_at is None:
            self._open_at = now + self._grace
        if force:
            self._take(holder, claims)
            return None
        for claim in claims:
            if holder not in self._holders[claim.key]:
                self._waiting[claim.key].setdefault(holder, order)
        places = [place for claim in claims if (place := self._place(holder, claim)) is not None]
        worst = max(places, default=None)
        if worst is None and now < self._open_at:
            worst = Place(0, claims[0].key)  # a new leader's first seconds: not yet
        if worst is not None:
            return worst
        self._take(holder, claims)
        return None

    def _place(self, holder: str, claim: Claim) -> Place | None:
        held = self._holders[claim.key]
        if holder in held:
            return None
        line = sorted(self._waiting[claim.key].items(), key=lambda entry: (entry[1], entry[0]))
        rank = next(index for index, (name, _) in enumerate(line) if name == holder)
        free = claim.max - len(held)
        return None if rank < free else Place(rank - max(free, 0) + 1, claim.key)

    def _take(self, holder: str, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self._waiting[claim.key].pop(holder, None)
            if holder not in self._holders[claim.key]:
                self._taken += 1
                self._holders[claim.key][holder] = self._taken

    async def release(self, holder: str, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self._holders[claim.key].pop(holder, None)
            self._waiting[claim.key].pop(holder, None)
            for table in (self._holders, self._waiting):
                if not table[claim.key]:
                    del table[claim.key]
        if self._change is not None:
            self._change.set()
            self._change = None

    async def holders(self, key: str) -> list[str]:
        held = self._holders.get(key, {})
        return sorted(held, key=held.__getitem__)

    async def changed(self) -> None:
        if self._change is None:
            self._change = asyncio.Event()
        await self._change.wait()

    def counts(self) -> dict[str, int]:
        """How many hold each key (for tests and metrics)."""
        return {key: len(held) for key, held in self._holders.items() if held}


@dataclass(frozen=True)
class RunQueue:
    """What a runner needs to wait its turn: where holdings are kept, its own id (the
    holder of its run keys; its tasks hold theirs as `{run_id}/{task_id}`), its place in
    line (`order_score`), and how to cancel another run (`cancelInProgress`)."""

    admission: Admission
    run_id: str
    order: float = 0.0
    preempt: Callable[[str], Awaitable[None]] | None = None
    poll_seconds: float = 1.0  # the longest between two looks at the line
