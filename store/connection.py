"""One bounded Redis connection pool per process, built the same way by the API and the operator.

Why not `Redis.from_url(url)`: its pool is unbounded in spirit but capped at 100 and
*non-blocking*, so a burst (the operator mirroring 600 runs at start-up) fails with
"Too many connections"; and its connections have no retry, so after a Redis restart
every pooled connection fails once before it reconnects (an API replica then falls
back to the WorkflowRun, and two replicas disagree). Instead, all from redis-py itself:

- `BlockingConnectionPool`: at most `redis_max_connections`; a caller waits up to
  `redis_pool_timeout_seconds` for a free one, then gets a ConnectionError (a 503 or a
  retried mirror write), never an unbounded number of sockets;
- `Retry(ExponentialWithJitterBackoff(...), redis_retries)` on ConnectionError and
  TimeoutError: a command on a connection the server closed (restart) is sent again
  on a fresh one, so the first command after a restart succeeds. Every write stageflow
  sends is idempotent (version-conditional scripts, HSET, DEL), so a retry is safe;
- `health_check_interval`: a connection idle that long is PINGed before use;
- connect and read timeouts, so no call hangs on a half-open socket. Blocking pub/sub
  reads are not bounded by the read timeout (redis-py reads them with no timeout).

So a Redis that does not answer costs a command at most (retries + 1)^2 x the connect
timeout (a blackholed host: about 4 s with the defaults) or the read timeout (a hung
server: about 8 s; redis-py retries the connection handshake inside each attempt too),
before the caller sees StoreUnavailableError (the API then reads the WorkflowRun, or
answers 503); a refused connection (Redis down on a reachable host) costs well under 1 s.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class RedisConnectionSettings(BaseSettings):
    """How this process talks to Redis (STAGEFLOW_REDIS_*): one pool, bounded, self-healing."""

    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    redis_max_connections: int = Field(
        default=100,
        ge=1,
        description="Connections in this process's Redis pool, at most (an open event "
        "stream holds one while it lasts).",
    )
    redis_pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a caller waits for a free pooled connection."
    )
    redis_connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="TCP connect timeout to Redis."
    )
    redis_socket_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Read/write timeout of one Redis command."
    )
    redis_health_check_seconds: float = Field(
        default=10.0, ge=0, description="A connection idle this long is PINGed before use."
    )
    redis_retries: int = Field(
        default=1,
        ge=0,
        description="Retries of a command that met a connection error (one is enough for "
        "a stale pooled connection: it is retried on a fresh one).",
    )
    redis_retry_backoff_seconds: float = Field(
        default=0.05, gt=0, description="First retry's backoff (exponential, with jitter)."
    )
    redis_retry_backoff_max_seconds: float = Field(
        default=0.5, gt=0, description="Longest backoff between two retries."
    )


def connect(url: str, settings: RedisConnectionSettings | None = None) -> aioredis.Redis:
    """A client on its own bounded pool (closing the client closes the pool)."""
    settings = settings or RedisConnectionSettings()
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        decode_responses=True,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=settings.redis_health_check_seconds,
        retry=Retry(
            ExponentialWithJitterBackoff(
                cap=settings.redis_retry_backoff_max_seconds,
                base=settings.redis_retry_backoff_seconds,
            ),
            settings.redis_retries,
        ),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)
