"""How `stageflow api` serves: uvicorn, with the fair-use bounds uvicorn lacks.

uvicorn starts its keep-alive timer only after a response, so a client that
opens a connection and sends its headers a byte at a time holds it for as long
as it likes (a thousand such connections were once held for 40 s). The
protocol below closes a connection whose request headers have not all arrived
within STAGEFLOW_HEADER_READ_TIMEOUT_SECONDS of its first byte (or of its
opening); the body's own timeout is BodyGuard's (guards.py). uvicorn's
`limit_concurrency` answers 503 past STAGEFLOW_MAX_CONNECTIONS.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from stageflow.api.config import ApiSettings


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers dawdle."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request has begun; its headers have not ended
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_for(settings: ApiSettings) -> type[HeaderTimeoutProtocol]:
    return type(
        "HeaderTimeoutProtocol",
        (HeaderTimeoutProtocol,),
        {"header_timeout": settings.header_read_timeout_seconds},
    )


def make_server(app: FastAPI, settings: ApiSettings, **overrides: Any) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=protocol_for(settings),
        limit_concurrency=settings.max_connections,
        **overrides,
    )
    return uvicorn.Server(config)
