"""What the door refuses before a body reaches a model, and how refusals are answered.

A request that is accepted must stay readable for as long as the run is kept, on
both stores and in a WorkflowRun. Before this module a body nested 253 levels
deep, or holding a lone surrogate (`"\\ud800"`), got a 202 and then made every
`GET` of its run a 500; NaN in `retries` was a 500 because the 422 echoed it.
So every JSON body is parsed here (FastAPI calls `Request.json()`, and the route
class below hands it this request):

- its size is bounded while it is read, and so is the time it takes to arrive
  (BodyGuard: 413 and 408, each naming its limit);
- numbers must be finite (`NaN`, `Infinity`, `1e400` are refused);
- nesting is bounded, and so is every string (keys too), which must also be
  valid Unicode that UTF-8 can encode.

Refusals are 422s in FastAPI's `json_invalid` shape, naming the problem. The
validation handler sanitises what it echoes, so no 422 can fail to encode.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageflow.api.config import ApiSettings


class _RefusedError(ValueError):
    pass


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _RefusedError(f"number out of range: {text[:40]}")
    return number


def _no_constant(name: str) -> Any:
    raise _RefusedError(f"{name} is not a JSON number")


def load_json(body: bytes, *, max_depth: int, max_string: int) -> Any:
    """Parse `body`; raise json.JSONDecodeError (a 422 from FastAPI) naming the problem."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError("the body is not UTF-8", "", error.start) from None
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except _RefusedError as error:
        raise json.JSONDecodeError(str(error), text, 0) from None
    except RecursionError:
        value = None
        problem: str | None = f"nested deeper than {max_depth} levels"
    else:
        problem = check_json(value, max_depth=max_depth, max_string=max_string)
    if problem is not None:
        raise json.JSONDecodeError(problem, text, 0)
    return value


def check_json(value: Any, *, max_depth: int, max_string: int) -> str | None:
    """What is wrong with a parsed JSON value, or None. Walks without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels (STAGEFLOW_MAX_JSON_DEPTH)"
            for key, child in item.items():
                stack.append((key, depth + 1))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels (STAGEFLOW_MAX_JSON_DEPTH)"
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if len(item) > max_string:
                return (
                    f"a string of {len(item)} characters "
                    f"(at most {max_string}, STAGEFLOW_MAX_STRING_LENGTH)"
                )
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string that is not valid Unicode (a lone surrogate such as \\ud800)"
    return None


class GuardedRequest(Request):
    """A request whose `json()` applies the limits above."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            settings: ApiSettings = self.app.state.settings
            self._json = load_json(
                await self.body(),
                max_depth=settings.max_json_depth,
                max_string=settings.max_string_length,
            )
        return self._json


class GuardedRoute(APIRoute):
    """FastAPI's documented way to give routes a custom Request class."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            return await handler(GuardedRequest(request.scope, request.receive))

        return guarded


def _encodable(value: Any) -> Any:
    """`value` with every string UTF-8 can encode and every number JSON can write."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422, minus what cannot be encoded: it once echoed NaN and lone surrogates
    back, which made the 422 itself a 500."""
    assert isinstance(error, RequestValidationError)
    errors = jsonable_encoder([_untagged(item) for item in error.errors()])
    return JSONResponse({"detail": _encodable(errors)}, status_code=422)


# The tags of a body that is one of several forms (POST /workflow: a workflow, or a template
# reference); pydantic puts the tag in an error's `loc`, where it names no field of the body.
BODY_FORMS = frozenset({"workflow-form", "template-form"})


def _untagged(item: Any) -> Any:
    loc = item.get("loc") if isinstance(item, dict) else None
    if isinstance(loc, tuple | list) and len(loc) > 1 and loc[0] == "body" and loc[1] in BODY_FORMS:
        return {**item, "loc": (loc[0], *loc[2:])}
    return item


class BodyGuard:
    """ASGI middleware: a body larger than the limit is a 413 before a byte of it is read
    (by its Content-Length) or as soon as the bytes read pass it (chunked bodies);
    a body that does not arrive in time is a 408. A slow client cannot hold a
    connection by trickling its body, and a 100 MB body is never buffered.

    (FastAPI's own `max_body_size` answers a plain-text 413 that cannot name the
    limit; this answers as every other error does.)"""

    def __init__(self, app: ASGIApp, *, max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = (
            f"Request body too large: at most {self.max_bytes} bytes (STAGEFLOW_MAX_BODY_BYTES)"
        )
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": too_large}, status_code=413)
            await response(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        received, complete = 0, False

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:  # what follows the body (a disconnect) may take as long as it takes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    status.HTTP_408_REQUEST_TIMEOUT,
                    f"Request body not received within {self.read_timeout:g}s "
                    "(STAGEFLOW_BODY_READ_TIMEOUT_SECONDS)",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large)
            else:
                complete = True
            return message

        await self.app(scope, guarded_receive, send)


def install(app: FastAPI, settings: ApiSettings) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
