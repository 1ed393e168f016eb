"""A bound on open event streams: per client and in total, so no client can hold them all.

An event stream (`GET /workflow/{id}/events`) lasts as long as its run, and each
holds a queue and a task in this process. A client past its share is answered
429, and a process at its total 503, each with a `detail` naming the limit and a
Retry-After. (Streams no longer hold a Redis connection each: see
store/fanout.py.) A client is its address as the server sees it; behind a proxy
that is the proxy, unless uvicorn is told to trust its forwarded headers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from fastapi import HTTPException, Request, status

RETRY_AFTER_SECONDS = "5"


class StreamSlots:
    def __init__(self, *, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def take(self, client: str) -> None:
        if self._open[client] >= self.per_client:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"Too many event streams from this client: at most {self.per_client} "
                "(STAGEFLOW_MAX_STREAMS_PER_CLIENT)",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        if self.open >= self.total:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"Too many event streams open: at most {self.total} (STAGEFLOW_MAX_STREAMS)",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        self._open[client] += 1

    def give_back(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


async def stream_slot(request: Request) -> AsyncIterator[None]:
    """A dependency: held from before the response starts until the stream ends."""
    slots: StreamSlots = request.app.state.streams
    client = request.client.host if request.client is not None else "unknown"
    slots.take(client)
    try:
        yield
    finally:
        slots.give_back(client)
