"""Leader election on a coordination.k8s.io/v1 Lease: one operator drives runs, others stand by.

Why not kopf's peering: it pauses equal peers, so two operators of one priority both
freeze. Why not `kubernetes.leaderelection`: it is thread-based and synchronous, never
releases the Lease on shutdown and cannot bound a renewal by the time left. This is
client-go's algorithm on the operator's own (async, bounded) KubeClient:

- a candidate takes the Lease when it is absent, released (no holder), or when its
  record has not changed for `leaseDurationSeconds` as measured on the candidate's
  own monotonic clock from when it saw the change (so clock skew between nodes does
  not matter);
- writes use the Lease's resourceVersion (replace): of two candidates, one wins,
  the other gets a conflict;
- the leader renews every `retry` seconds; a renewal not done within
  `renew_deadline` of the last successful one's sending means leadership is lost.
  As `renew_deadline < duration`, the old leader has stopped its runs at least
  `duration - renew_deadline` seconds before any standby can take over;
- a leader that stops gracefully releases the Lease (no holder, duration 1 s), so a
  standby takes over at its next retry instead of after the full duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from stageflow.kube import KubeClient, KubeConflictError, KubeError
from stageflow.kube.bodies import Lease, LeaseSpec
from stageflow.models.status import format_timestamp, utcnow
from stageflow.operator.metrics import LEADER

logger = logging.getLogger(__name__)


class LeaseElector:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: int,
        renew_deadline: float,
        retry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not renew_deadline < duration:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        self._kube = kube
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew_deadline, self.retry = duration, renew_deadline, retry
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.holder: str | None = None
        self._renewed_at = 0.0
        self.lost = False  # leadership ended because a renewal failed or another took it
        self._released = False
        self._lock = asyncio.Lock()  # one read-modify-write of the Lease at a time
        self.leading = False
        self._warned: str | None = None

    def _warn_once(self, message: str) -> None:
        if message != self._warned:
            self._warned = message
            logger.warning("%s", message)

    async def acquire(self) -> None:
        """Wait (as a standby) until this candidate holds the Lease."""
        told: str | None = None
        while True:
            self._renewed_at = self._clock()
            if await self._try():
                break
            if self.holder != told:
                told = self.holder
                logger.info("standing by: %s holds lease %s/%s", told, self.namespace, self.name)
            await asyncio.sleep(self.retry)
        self.leading = True
        LEADER.set(1)
        logger.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)

    async def hold(self) -> None:
        """Renew the Lease until a renewal fails to land within the deadline (then return)."""
        last = self._renewed_at  # when the request that acquired the Lease was sent
        while True:
            await asyncio.sleep(
                min(self.retry, max(0.0, last + self.renew_deadline - self._clock()))
            )
            sent = self._clock()
            remaining = last + self.renew_deadline - sent
            renewed = False
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._try()
                except TimeoutError:
                    renewed = False
            if self._released:
                return
            if renewed:
                last = sent
                continue
            if (
                self.holder not in (None, self.identity)
                or self._clock() >= last + self.renew_deadline
            ):
                self.leading = False
                self.lost = True
                LEADER.set(0)
                logger.error(
                    "lost lease %s/%s (holder now: %s): stopping runs",
                    self.namespace,
                    self.name,
                    self.holder,
                )
                return

    async def release(self) -> None:
        """Give the Lease up (graceful stop), so a standby takes over at once."""
        async with self._lock:  # after a renewal under way, and no renewal after this
            self._released = True
            if not self.leading:
                return
            self.leading = False
            LEADER.set(0)
            await self._give_up()

    async def _give_up(self) -> None:
        try:
            lease = await self._kube.get_lease(self.namespace, self.name)
            if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
                return
            lease["spec"].update(
                {
                    "holderIdentity": None,
                    "leaseDurationSeconds": 1,
                    "renewTime": format_timestamp(utcnow()),
                }
            )
            await self._kube.replace_lease(self.namespace, self.name, lease)
            logger.info("released lease %s/%s", self.namespace, self.name)
        except KubeError as error:
            logger.warning("lease %s/%s not released (%s)", self.namespace, self.name, error)

    def _spec(self, *, acquired: str, transitions: int) -> LeaseSpec:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": acquired,
            "renewTime": format_timestamp(utcnow()),
            "leaseTransitions": transitions,
        }

    async def _try(self) -> bool:
        """One attempt to acquire or renew; False if another holds it or the write failed."""
        async with self._lock:
            if self._released:
                return False
            return await self._try_unlocked()

    async def _try_unlocked(self) -> bool:
        now = format_timestamp(utcnow())
        try:
            lease = await self._kube.get_lease(self.namespace, self.name)
            if lease is None:
                body: Lease = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(acquired=now, transitions=0),
                }
                await self._kube.create_lease(self.namespace, body)
                self.holder = self.identity
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or None
            self.holder = holder
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if record != self._observed:
                self._observed, self._observed_at = record, self._clock()
            duration = spec.get("leaseDurationSeconds") or self.duration
            if holder not in (None, self.identity) and (
                self._clock() < self._observed_at + duration
            ):
                return False
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder == self.identity:
                new = self._spec(acquired=spec.get("acquireTime") or now, transitions=transitions)
            else:
                new = self._spec(acquired=now, transitions=transitions + 1)
            lease["spec"] = new
            await self._kube.replace_lease(self.namespace, self.name, lease)
            self.holder = self.identity
            return True
        except KubeConflictError:
            return False
        except KubeError as error:
            if error.status in (401, 403):
                # Not a passing fault: without the right to the Lease this operator would
                # stand by for ever, silently (election is on by default). Said once per
                # change of cause, so the log names the fix without repeating every try.
                self._warn_once(
                    f"cannot take lease {self.namespace}/{self.name}: {error}. Grant "
                    "get/create/update on leases.coordination.k8s.io (the chart does), or "
                    "set STAGEFLOW_LEADER_ELECTION=false for a single operator"
                )
            else:
                logger.debug("lease %s/%s: %s", self.namespace, self.name, error)
            return False
