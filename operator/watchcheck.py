"""Is a watch keeping up? The liveness check that tells a stuck watch from an idle one.

Why: kopf's own liveness endpoint answers as long as its event loop runs. A watch
stream that stops delivering (a half-open connection, a stalled worker) looks just
like a quiet cluster, and every run it should start waits for ever. An idle watch
and a stuck one differ in one way only: the apiserver holds changes the watch never
delivered. So the check lists the watched objects (their metadata only) every
`every_seconds` and notes each object whose listed version the watch has not
delivered. An object still noted `stale_seconds` later, with no event for it at all
in between, means the watch is stuck: the probe fails, the kubelet restarts the pod,
and the new operator lists everything afresh. Idle means nothing noted: healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from stageflow.kube import KubeError, ObjectKey

logger = logging.getLogger(__name__)

ListVersions = Callable[[], Awaitable[dict[ObjectKey, str]]]


class WatchStuckError(Exception):
    """The watch has not delivered what the apiserver has held for `stale_seconds`."""


class WatchCheck:
    def __init__(
        self,
        what: str,
        list_versions: ListVersions,
        *,
        stale_seconds: float,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._list = list_versions
        self._stale = stale_seconds
        self._every = every_seconds
        self._clock = clock
        self._seen: dict[ObjectKey, str] = {}  # the version the watch last delivered
        self._behind: dict[ObjectKey, float] = {}  # listed, not delivered since: when noted
        self._listed_at: float | None = None
        # Objects with an event while a list is in flight: the list may show an older or
        # a newer version than the event did; either way the watch is moving for them.
        self._touched: set[ObjectKey] | None = None
        self.stuck: str | None = None  # the verdict the probe reads: None while keeping up

    def seen(self, key: ObjectKey, version: str | None, *, deleted: bool) -> None:
        """The watch delivered an event for `key` (any event is progress for it)."""
        self._behind.pop(key, None)
        if self._touched is not None:
            self._touched.add(key)
        if deleted or version is None:
            self._seen.pop(key, None)
        else:
            self._seen[key] = version

    async def check(self) -> None:
        """List at most every `every_seconds`; raise WatchStuckError if the watch lags too long."""
        now = self._clock()
        if self._listed_at is None or now - self._listed_at >= self._every:
            self._listed_at = now
            self._touched = set()
            try:
                listed = await self._list()
                touched = self._touched
            finally:
                self._touched = None
            # Noted, then deleted on the apiserver: a missed deletion blocks nothing.
            self._behind = {key: since for key, since in self._behind.items() if key in listed}
            for key, version in listed.items():
                if key not in touched and self._seen.get(key) != version:
                    self._behind.setdefault(key, now)
        if not self._behind:
            return
        key, since = min(self._behind.items(), key=lambda item: item[1])
        lag = now - since
        if lag >= self._stale:
            namespace, name = key
            raise WatchStuckError(
                f"the {self.what} watch is stuck: {namespace}/{name} changed on the apiserver "
                f"{lag:.0f}s ago and the watch has not delivered it"
            )

    async def run_forever(self) -> None:
        """Check every `every_seconds`, keeping the verdict for the probe (which then does
        no I/O of its own). An apiserver that does not answer keeps the last verdict: it
        is not this operator's fault, and restarting it would not help."""
        while True:
            try:
                await self.check()
            except WatchStuckError as stuck:
                if self.stuck is None:
                    logger.error("%s", stuck)
                self.stuck = str(stuck)
            except KubeError as error:
                logger.debug("the %s watch check could not list: %s", self.what, error)
            except Exception:  # a bug here must not freeze the verdict for good
                logger.exception("the %s watch check failed; checking again", self.what)
            else:
                if self.stuck is not None:
                    logger.info("the %s watch keeps up again", self.what)
                self.stuck = None
            await asyncio.sleep(self._every)
