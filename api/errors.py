"""The API's errors and how they answer: a status code and a `detail` that names the problem.

Backends raise these; the handlers below turn them (and the engine's SpecError)
into responses, so no route catches anything and bad input never becomes a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from stageflow.engine import SpecError
from stageflow.engine.approval import ApprovalInputError, NotWaitingError
from stageflow.engine.retry import NotRetryableError
from stageflow.kube import KubeConflictError, KubeError, KubeUnavailableError
from stageflow.kube.catalog import InvalidTemplateError
from stageflow.models.records import InvalidRunIdError
from stageflow.store import StoreUnavailableError


class ApiError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RunNotFoundError(ApiError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("Workflow not found")


class TaskNotFoundError(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class RunFinishedError(ApiError):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, phase: str) -> None:
        super().__init__(f"Workflow already finished ({phase})")


class RunConflictError(ApiError):
    """The run is not in a state the action applies to (or another action got there first)."""

    status_code = status.HTTP_409_CONFLICT


class NoLogsError(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class InvalidRequestError(ApiError):
    status_code = status.HTTP_400_BAD_REQUEST


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


async def _invalid_run_id(_: Request, error: Exception) -> JSONResponse:
    """A store refused an ID that is no run's (the routes check first; this is the net)."""
    return JSONResponse({"detail": "Workflow not found"}, status_code=status.HTTP_404_NOT_FOUND)


async def _conflict(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)


async def _spec_error(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_400_BAD_REQUEST)


async def _store_unavailable(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": f"Run store unavailable: {error}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _kube_error(_: Request, error: Exception) -> JSONResponse:
    """The apiserver unreachable is 503; an object changed under a write that kept retrying
    409; anything else it refused (RBAC, say) is 502."""
    if isinstance(error, KubeConflictError):
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)
    unavailable = isinstance(error, KubeUnavailableError)
    code = status.HTTP_503_SERVICE_UNAVAILABLE if unavailable else status.HTTP_502_BAD_GATEWAY
    return JSONResponse({"detail": f"Kubernetes API: {error}"}, status_code=code)


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette answers a method a path does not take with the methods of the first route
    that matched the path alone (`OPTIONS /workflow/{id}` left DELETE out). Here `Allow`
    lists every method a route serves at that path, and OPTIONS is answered
    with it (204)."""
    assert isinstance(error, HTTPException)
    if error.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        return await http_exception_handler(request, error)
    allow = ", ".join(_allowed_methods(request))
    if request.method == "OPTIONS":
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Allow": allow})
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": allow},
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route serves at the request's path, asked of the routes themselves
    (Starlette's `matches`, pages left out of the OpenAPI document included), so `Allow`
    never names a method that would 405. A mount of static files matches every method but
    serves GET and HEAD alone, so that is what it adds."""
    allowed = {"OPTIONS"}
    routes = request.app.router.routes
    for method in _HTTP_METHODS - allowed:
        # From the app's root: a mounted app's error carries the mount's own root_path.
        scope = {**request.scope, "method": method, "root_path": "", "path": request.url.path}
        for route in routes:
            if route.matches(scope)[0] is not Match.FULL:
                continue
            if not isinstance(route, Mount) or (
                isinstance(route.app, StaticFiles) and method in ("GET", "HEAD")
            ):
                allowed.add(method)
    return sorted(allowed)


_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(NotRetryableError, _conflict)
    app.add_exception_handler(NotWaitingError, _conflict)
    app.add_exception_handler(ApprovalInputError, _spec_error)
    app.add_exception_handler(InvalidTemplateError, _spec_error)
    app.add_exception_handler(InvalidRunIdError, _invalid_run_id)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(KubeError, _kube_error)
