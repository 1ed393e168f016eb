"""The caller and the question every mode answers: may this caller do this verb here?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# `approve` is stageflow's own verb (RBAC takes any verb): deciding an approval task is a
# permission apart, so a user who may read or even patch a run need not be able to approve.
Verb = Literal["get", "list", "create", "update", "patch", "delete", "approve"]
# The resources of group stageflow.dev a route acts on: runs, templates and schedules are
# granted apart (a user may run templates without being able to change them).
Resource = Literal["workflowruns", "workflowtemplates", "schedules"]
RUNS: Resource = "workflowruns"
RESOURCE = "workflowruns.stageflow.dev"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, as the apiserver (or the token file) names them."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


ANONYMOUS = Principal(name="anonymous")


class Authorizer(Protocol):
    """One auth mode. `enabled` False (mode `none`): no credentials asked, everything allowed."""

    enabled: bool

    async def authenticate(self, token: str) -> Principal | None:
        """The caller this bearer token stands for; None if it is invalid."""
        ...

    async def allowed(
        self, principal: Principal, verb: Verb, namespace: str, resource: Resource = RUNS
    ) -> bool:
        """May `principal` do `verb` on `resource` (of group stageflow.dev) in `namespace`?"""
        ...

    async def close(self) -> None: ...


class NoAuth:
    """Mode `none`: no checks (the default only when the API listens on loopback)."""

    enabled = False

    async def authenticate(self, token: str) -> Principal | None:
        return ANONYMOUS

    async def allowed(
        self, principal: Principal, verb: Verb, namespace: str, resource: Resource = RUNS
    ) -> bool:
        return True

    async def close(self) -> None:
        return None
