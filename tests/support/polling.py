"""Waiting for a condition by polling, bounded in time: the suite never sleeps blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(probe: Callable[[], Awaitable[bool]], *, within: float = 10) -> None:
    """Return once `probe()` is true; fail with TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await probe():
                return
            await asyncio.sleep(0.02)


def wait_until(check: Any, within: float = 30) -> None:
    """The same for a plain function, in a test that is not async (polls every 50 ms)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
