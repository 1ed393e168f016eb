"""Concurrency keys in Redis: the local backend's admission when several API replicas share
one Redis (engine/admission.py says what admission is; MemoryAdmission is the one-process
version, and the leading operator's).

Per key, three sorted sets: `holders` (holder -> when its hold lapses), `waiting` (holder
-> its order, lower first) and `seen` (waiting holder -> when it last asked). One Lua
script takes every key of a claim or none, in Redis, so two replicas never both take the
last slot. A replica renews its holders' leases while they run; one that dies stops, and
its holds lapse after the lease (its runs stay as they were: the local backend is not
durable), as do its places in line: so no slot is held for ever by a process that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from stageflow.engine.admission import Claim, Place
from stageflow.store.keys import admission_keys
from stageflow.store.redis_runs import translated

logger = logging.getLogger(__name__)

_ACQUIRE = """
local holder, order, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, force, n = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
for i = 0, n - 1 do
  local held, waiting, seen = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', now - lease)) do
    redis.call('ZREM', waiting, gone)
    redis.call('ZREM', seen, gone)
  end
end
local worst, where = 0, 0
if force ~= '1' then
  for i = 0, n - 1 do
    local held, waiting, seen = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
    if not redis.call('ZSCORE', held, holder) then
      redis.call('ZADD', waiting, 'NX', order, holder)
      redis.call('ZADD', seen, now, holder)
      local rank = redis.call('ZRANK', waiting, holder)
      local free = tonumber(ARGV[7 + i]) - redis.call('ZCARD', held)
      if rank >= free then
        local place = rank - math.max(free, 0) + 1
        if place > worst then worst, where = place, i + 1 end
      end
    end
  end
end
if worst > 0 then return {worst, where} end
for i = 0, n - 1 do
  local held, waiting, seen = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  redis.call('ZREM', waiting, holder)
  redis.call('ZREM', seen, holder)
  redis.call('ZADD', held, now + lease, holder)
end
return {0, 0}
"""

_RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

_RENEW = """
local until = tonumber(ARGV[1])
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], until, ARGV[2]) end
return 1
"""


class RedisAdmission:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        *,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.5,
    ) -> None:
        self._redis, self._namespace = client, namespace
        self._lease, self._poll = lease_seconds, poll_seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, Sequence[Claim]] = {}  # what this process holds: renewed
        self._renewing: asyncio.Task[None] | None = None

    def _keys(self, claims: Sequence[Claim]) -> list[str]:
        return [name for claim in claims for name in admission_keys(self._namespace, claim.key)]

    @translated
    async def acquire(
        self, holder: str, claims: Sequence[Claim], order: float, *, force: bool = False
    ) -> Place | None:
        now = int(time.time() * 1000)
        args: list[str | int | float] = [
            holder, order, now, int(self._lease * 1000), "1" if force else "0", len(claims),
            *[claim.max for claim in claims],
        ]  # fmt: skip
        worst, where = await self._acquire(keys=self._keys(claims), args=args)
        if int(worst) > 0:
            return Place(int(worst), claims[int(where) - 1].key)
        self._held[holder] = claims
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._keep(), name="stageflow admission leases")
        return None

    @translated
    async def release(self, holder: str, claims: Sequence[Claim]) -> None:
        self._held.pop(holder, None)
        await self._release(keys=self._keys(claims), args=[holder])

    @translated
    async def holders(self, key: str) -> list[str]:
        held = admission_keys(self._namespace, key)[0]
        now = int(time.time() * 1000)
        return [str(name) for name in await self._redis.zrangebyscore(held, now, "+inf")]

    async def changed(self) -> None:
        """Releases are not announced across replicas: look again after a short poll."""
        await asyncio.sleep(self._poll)

    async def _keep(self) -> None:
        """Renew the leases of what this process holds, three times per lease. A hold that
        lapsed while Redis was away is put back: the run holding it is still running (what
        holds a key is what runs), even if that briefly lets one more in than `max`."""
        while self._held:
            await asyncio.sleep(self._lease / 3)
            until = int((time.time() + self._lease) * 1000)
            for holder, claims in list(self._held.items()):
                held = [admission_keys(self._namespace, claim.key)[0] for claim in claims]
                try:
                    await self._renew(keys=held, args=[until, holder])
                except Exception as error:  # Redis away, read-only in a failover: next time
                    logger.warning("cannot renew the concurrency leases: %s", error)
                    break

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
