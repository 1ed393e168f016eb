"""The WebSocket route of a run (`/workflow/{id}/ws`); what it sends, and how its token
travels, is api/streaming/socket.py. The SSE and followed-log routes are in workflows.py."""

from __future__ import annotations

import contextlib
from typing import cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from stageflow.api.backends import Backend
from stageflow.api.errors import RunNotFoundError
from stageflow.api.streaming.socket import PROTOCOL, authorize_socket, stream_run
from stageflow.models.records import InvalidRunIdError, checked_run_id

router = APIRouter(tags=["workflows"])


@router.websocket("/workflow/{run_id}/ws")
async def workflow_socket(websocket: WebSocket, run_id: str) -> None:
    """JSON messages `{"event": "snapshot"|"update", "data": ...}`, `{"event": "log",
    "task": ..., "data": text}` and a last `{"event": "end"}`; then it closes (1000)."""
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    shown, refusal = await authorize_socket(websocket)
    backend = cast(Backend, websocket.app.state.backend)
    if refusal is None:
        try:
            await backend.get(checked_run_id(run_id))
        except (RunNotFoundError, InvalidRunIdError):
            refusal = "4404 Workflow not found"
    if refusal is not None:
        code, _, reason = refusal.partition(" ")
        await websocket.close(code=int(code), reason=reason)
        return
    with contextlib.suppress(WebSocketDisconnect):
        await stream_run(websocket, backend, run_id, shown=shown)
        await websocket.close(code=1000)
