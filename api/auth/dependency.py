"""The routes' side of auth: `Annotated` dependencies that authenticate and authorize.

A route declares the verb it needs (`MayGet`, `MayCreate`, ...) in its decorator or
signature and receives the caller. Missing or invalid credentials are a 401 with
`WWW-Authenticate: Bearer`; a caller without the permission a 403 that names the
verb and the resource. FastAPI's `HTTPBearer` puts an "Authorize" button on /docs,
where a user pastes a token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stageflow.api.auth.model import ANONYMOUS, RUNS, Authorizer, Principal, Resource, Verb

bearer = HTTPBearer(
    auto_error=False,
    description="`kubernetes` mode: a Kubernetes token (e.g. `kubectl create token NAME`); "
    "`token` mode: a token from STAGEFLOW_AUTH_TOKENS_FILE.",
)


def _authorizer(request: Request) -> Authorizer:
    return cast(Authorizer, request.app.state.auth)


def _namespace(request: Request) -> str:
    return str(request.app.state.settings.namespace)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The caller; 401 without a valid bearer token (unless the mode is `none`)."""
    auth = _authorizer(request)
    if not auth.enabled:
        return ANONYMOUS
    if credentials is None:
        raise _unauthorized("Not authenticated: send `Authorization: Bearer <token>`")
    principal = await auth.authenticate(credentials.credentials)
    if principal is None:
        raise _unauthorized("Invalid bearer token")
    return principal


Authenticated = Annotated[Principal, Depends(authenticated)]


def _require(
    verb: Verb, resource: Resource = RUNS
) -> Callable[[Request, Principal], Awaitable[Principal]]:
    async def check(request: Request, principal: Authenticated) -> Principal:
        namespace = _namespace(request)
        if not await _authorizer(request).allowed(principal, verb, namespace, resource):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"Forbidden: {principal.name} may not {verb} {resource}.stageflow.dev "
                f"in namespace {namespace}",
            )
        return principal

    check.__name__ = f"may_{verb}" if resource == RUNS else f"may_{verb}_{resource}"
    return check


MayGet = Annotated[Principal, Depends(_require("get"))]
MayList = Annotated[Principal, Depends(_require("list"))]
MayCreate = Annotated[Principal, Depends(_require("create"))]
MayPatch = Annotated[Principal, Depends(_require("patch"))]
MayApprove = Annotated[Principal, Depends(_require("approve"))]
MayDelete = Annotated[Principal, Depends(_require("delete"))]

# The same verbs on templates and on schedules (docs/security.md).
MayGetTemplate = Annotated[Principal, Depends(_require("get", "workflowtemplates"))]
MayListTemplates = Annotated[Principal, Depends(_require("list", "workflowtemplates"))]
MayCreateTemplate = Annotated[Principal, Depends(_require("create", "workflowtemplates"))]
MayUpdateTemplate = Annotated[Principal, Depends(_require("update", "workflowtemplates"))]
MayDeleteTemplate = Annotated[Principal, Depends(_require("delete", "workflowtemplates"))]
MayGetSchedule = Annotated[Principal, Depends(_require("get", "schedules"))]
MayListSchedules = Annotated[Principal, Depends(_require("list", "schedules"))]
MayCreateSchedule = Annotated[Principal, Depends(_require("create", "schedules"))]
MayUpdateSchedule = Annotated[Principal, Depends(_require("update", "schedules"))]
MayPatchSchedule = Annotated[Principal, Depends(_require("patch", "schedules"))]
MayDeleteSchedule = Annotated[Principal, Depends(_require("delete", "schedules"))]


async def shows_env(request: Request, principal: MayGet) -> bool:
    """Whether plain `env` values of Job tasks are shown to this caller: only to one who
    may also create runs (who could submit them anyway); a caller who may only read
    sees them redacted."""
    return await _authorizer(request).allowed(principal, "create", _namespace(request))


ShowsEnv = Annotated[bool, Depends(shows_env)]
