"""The WebSocket of a run (`/workflow/{id}/ws`): the SSE stream's events (`snapshot`, then
`update`s) and `log` messages for every task of the run, then `end`, and the socket closes
when the run has finished.

The WebSocket's token: a browser's WebSocket cannot set an Authorization header, and
a token in the query string would land in access logs and proxies' logs. So it
travels as a subprotocol, `base64url.bearer.stageflow.dev.<base64url(token)>`,
offered beside `stageflow.v1` (the way kube-apiserver takes tokens for its own
WebSockets); the server picks `stageflow.v1` and never echoes the token. Clients
that can set headers may send `Authorization: Bearer` instead. A refusal closes the
socket with the HTTP status as the code: 4401, 4403, 4404.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any, cast

from fastapi import WebSocket, WebSocketDisconnect

from stageflow.api.auth import ANONYMOUS, Authorizer, Principal
from stageflow.api.backends import Backend
from stageflow.api.streaming.events import run_events
from stageflow.api.streaming.logs import POLL_SECONDS, RunLogs

PROTOCOL = "stageflow.v1"
TOKEN_PROTOCOL_PREFIX = "base64url.bearer.stageflow.dev."
QUEUE_SIZE = 256  # messages waiting for a slow client before the run's stream waits too


def socket_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
            encoded = protocol[len(TOKEN_PROTOCOL_PREFIX) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


async def authorize_socket(websocket: WebSocket) -> tuple[bool, str | None]:
    """(whether env is shown, None) for a caller who may get runs; (False, reason) if not."""
    auth = cast(Authorizer, websocket.app.state.auth)
    namespace = str(websocket.app.state.settings.namespace)
    principal: Principal | None = ANONYMOUS
    if auth.enabled:
        token = socket_token(websocket)
        if token is None:
            return False, "4401 Not authenticated: offer the token subprotocol or a bearer header"
        principal = await auth.authenticate(token)
        if principal is None:
            return False, "4401 Invalid bearer token"
    assert principal is not None
    if not await auth.allowed(principal, "get", namespace):
        return False, f"4403 Forbidden: {principal.name} may not get workflowruns"
    return await auth.allowed(principal, "create", namespace), None


async def stream_run(websocket: WebSocket, backend: Backend, run_id: str, *, shown: bool) -> None:
    """One producer (events, and the logs swept beside them) and one sender, joined by a
    bounded queue; a client that leaves ends both."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
    logs = RunLogs(backend, run_id)
    stopped = asyncio.Event()

    async def put_logs() -> None:
        for task_id, text in await logs.sweep():
            await queue.put({"event": "log", "task": task_id, "data": text})

    async def sweep_logs() -> None:
        # Ends on `stopped`, not by cancellation: a cancel landing inside a store call
        # was seen swallowed there (redis), which left this loop running for ever.
        while not stopped.is_set():
            await put_logs()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), POLL_SECONDS)

    async def produce() -> None:
        sweeper: asyncio.Task[None] | None = None
        try:
            async for kind, data in run_events(backend, run_id, shown=shown):
                await queue.put({"event": kind, "data": data})
                if sweeper is None:  # logs only after the snapshot: it comes first
                    sweeper = asyncio.create_task(sweep_logs())
        finally:
            stopped.set()
        if sweeper is not None:
            await sweeper
        await put_logs()  # what the tasks wrote last
        await queue.put({"event": "end"})

    async def send() -> None:
        while True:
            await websocket.send_text(json.dumps(await queue.get()))
            queue.task_done()

    async def until_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
        raise WebSocketDisconnect()

    producer, sender, gone = (asyncio.create_task(job()) for job in (produce, send, until_gone))
    tasks = [producer, sender, gone]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if producer.done() and not gone.done() and not sender.done():
            producer.result()  # a failed producer is not an ordinary end
            drained = asyncio.create_task(queue.join())
            tasks.append(drained)
            await asyncio.wait([drained, sender, gone], return_when=asyncio.FIRST_COMPLETED)
        for task in (gone, sender):
            if task.done():
                task.result()  # a client gone raises WebSocketDisconnect
    finally:
        stopped.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
