"""Waiting for a condition by polling, bounded in time: the suite never sleeps blindly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(probe: Callable[[], Awaitable[bool]], *, within: float = 10) -> None:
    """Return once `probe()` is true; fail with TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await probe():
                return
            await asyncio.sleep(0.02)
