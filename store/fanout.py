"""One Redis pub/sub connection per process, fanned out to every local listener.

Each event stream (`GET /workflow/{id}/events`) used to open its own pub/sub
connection from the client's pool, so about a hundred open streams took every
connection and the rest of the API answered 503. Here a process holds a single
subscriber connection: the first local listener of a channel subscribes it, the
last one to leave unsubscribes it, and one reader task hands each message to
the queues of that channel's listeners.

A listener is only handed its iterator once Redis has confirmed its channel, so
whatever it reads next (a snapshot, say) cannot miss an update published after.
When the connection is lost for good (redis-py's own retries exhausted), every
listener's iterator raises StoreUnavailableError and the next listener starts a
new connection; callers already resubscribe after that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from stageflow.store.base import StoreUnavailableError

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
CONFIRM_SECONDS = 5.0
_POLL_SECONDS = 1.0  # the reader wakes this often, so redis-py's health checks can run
_REDIS_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)


class _Lost:
    """Put in a listener's queue when the connection is lost."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PubSubFanout:
    def __init__(self, client: aioredis.Redis, *, keep: str) -> None:
        """`keep` stays subscribed while the connection lives: redis-py health-checks a
        connection only while it has no subscription, and that check would read the
        socket concurrently with the reader task."""
        self._client = client
        self._keep = keep
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[str, set[asyncio.Queue[str | _Lost]]] = defaultdict(set)
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()

    @property
    def connections(self) -> int:
        """Pub/sub connections this process holds (0 or 1)."""
        return 0 if self._pubsub is None else 1

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """Messages of `channel` from the moment Redis confirms the subscription."""
        queue: asyncio.Queue[str | _Lost] = asyncio.Queue(QUEUE_SIZE)
        async with self._lock:
            pubsub = await self._connected()
            self._queues[channel].add(queue)
            if channel not in self._confirmed:
                self._confirmed[channel] = asyncio.Event()
                try:
                    await pubsub.subscribe(channel)
                except _REDIS_ERRORS as error:
                    self._queues[channel].discard(queue)
                    self._confirmed.pop(channel, None)
                    raise StoreUnavailableError(f"Redis: {error}") from error
            confirmed = self._confirmed[channel]
        try:
            try:
                async with asyncio.timeout(CONFIRM_SECONDS):
                    await confirmed.wait()
            except TimeoutError:
                raise StoreUnavailableError(
                    f"Redis did not confirm the subscription to {channel}"
                ) from None
            yield _drain(queue)
        finally:
            await self._leave(channel, queue)

    async def _leave(self, channel: str, queue: asyncio.Queue[str | _Lost]) -> None:
        async with self._lock:
            listeners = self._queues.get(channel)
            if listeners is None:
                return
            listeners.discard(queue)
            if listeners or channel == self._keep:
                return
            del self._queues[channel]
            self._confirmed.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await self._pubsub.unsubscribe(channel)

    async def _connected(self) -> PubSub:
        """The shared subscriber, connecting it (and its reader) first if need be."""
        if self._pubsub is not None:
            return self._pubsub
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._keep)
            confirmation = await pubsub.get_message(timeout=CONFIRM_SECONDS)
        except _REDIS_ERRORS as error:
            await pubsub.aclose()
            raise StoreUnavailableError(f"Redis: {error}") from error
        if confirmation is None or confirmation["type"] != "subscribe":
            await pubsub.aclose()
            raise StoreUnavailableError(f"Redis did not confirm the subscription to {self._keep}")
        self._confirmed[self._keep] = asyncio.Event()
        self._confirmed[self._keep].set()
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read(pubsub), name="redis pub/sub fan-out")
        return pubsub

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=_POLL_SECONDS)
                if message is None:
                    continue
                channel = str(message["channel"])
                if message["type"] == "subscribe":
                    event = self._confirmed.get(channel)
                    if event is not None:
                        event.set()
                elif message["type"] == "message":
                    for queue in self._queues.get(channel, ()):
                        if not queue.full():  # a listener that fell this far behind skips
                            queue.put_nowait(str(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("Redis pub/sub connection lost: %s", error)
            await self._lost(pubsub, error)

    async def _lost(self, pubsub: PubSub, error: BaseException) -> None:
        async with self._lock:
            if self._pubsub is pubsub:
                self._pubsub, self._reader = None, None
            for listeners in self._queues.values():
                for queue in listeners:
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(_Lost(error))
            self._queues.clear()
            self._confirmed.clear()
        with contextlib.suppress(Exception):
            await pubsub.aclose()

    async def close(self) -> None:
        """Stop reading; listeners still iterating get StoreUnavailableError."""
        reader, pubsub = self._reader, self._pubsub
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            await self._lost(pubsub, ConnectionError("the store was closed"))


async def _drain(queue: asyncio.Queue[str | _Lost]) -> AsyncIterator[str]:
    while True:
        item = await queue.get()
        if isinstance(item, _Lost):
            raise StoreUnavailableError(f"Redis: {item.error}")
        yield item
