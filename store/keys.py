"""The Redis key layout: every key and channel stageflow uses, named here and nowhere else.

The API replicas, the operator's mirror and any other program reading Redis (redis-cli,
a dashboard) must agree on these names, so they are built in this one module; the rest
of the code base calls these functions (tests compare them with the literal layout).

Keys (prefix `stageflow:`; `{ns}` is the run's namespace: the WorkflowRun's for the
operator's mirror, STAGEFLOW_NAMESPACE for the API's local backend; two runs with the
same name in two namespaces never share a key):
- `run:{ns}/{id}` hash: runId, namespace, name, labels, createdAt, phase, progress,
  startedAt, finishedAt, message, spec (JSON), detail (the status as JSON),
  cancelRequested, submittedBy, ttl, and `version` (the WorkflowRun's resourceVersion;
  mirror only);
- `run:{ns}/{id}:tasks` hash: task id -> phase (the seed's shape: one HGETALL answers /status);
- `run:{ns}/{id}:logs` hash: task id -> the output of its latest in-process attempt (bounded);
- `run:{ns}/{id}:deleted`: a tombstone for ten minutes after a delete; it holds the
  resourceVersion the run was deleted at (`*`: deleted by the API, any version);
- `runs:{ns}` sorted set: the namespace's run ids scored by creation time in microseconds;
- `namespaces` set: every namespace that has runs here (the operator's resync walks them);
- `run:{ns}/{id}:retry:{after}`: held for a minute by the one request that may make the
  retry that follows retry `after` (its id; `first` for the first) of a run (local backend;
  two retries sent at once give one retry and one 409);
- `mirror:{scope}:synced`: the run id of the Redis server the operator's mirror of
  `scope` (its namespace, or `*`) last resynced against (a restart or flush shows);
- channel `run:{ns}/{id}:events`: every status update, as a RunEvent in JSON;
- channel `control`: cancellation requests for whichever replica runs a run (local backend).
- `templates:{ns}` hash: template name -> its current revision as JSON (local backend);
- `template:{ns}/{name}:revisions` hash: revision -> that revision as JSON (the last few);
- `schedules:{ns}` hash: schedule name -> the schedule (spec, status, version) as JSON;
- `scheduler:{ns}:lease`: the API replica that runs the namespace's schedules now;
- `admission:{ns}:{key}:holders|waiting|seen` sorted sets: who holds a concurrency key
  (until when), who waits for it (in order) and when each waiter last asked (local backend);
- `cache:{ns}:{hash}`: a cached task's recorded result as JSON, expiring after its
  `ttlSeconds` (`hash`: the SHA-256 of its key, engine/cache_keys.py);
- `cache:{ns}` sorted set: the namespace's entries by last use (ms), for evicting the
  least recently used past STAGEFLOW_CACHE_MAX_ENTRIES;
- `run:{ns}/{id}:claimed`: set by the one scheduler that creates the run a schedule slot
  derives (so a slot fires once even when a lease changes hands mid-firing).

Every per-run name is built from `run_key`, which takes only a checked run ID: a string
such as `{id}:tasks` given as an ID cannot name another run's key.
"""

from __future__ import annotations

from stageflow.models.records import checked_run_id

PREFIX = "stageflow:"
NAMESPACES = f"{PREFIX}namespaces"
CONTROL = f"{PREFIX}control"


def run_key(namespace: str, run_id: str) -> str:
    """The run's hash; every per-run key below is this one plus a suffix."""
    return f"{PREFIX}run:{namespace}/{checked_run_id(run_id)}"


def tasks_key(namespace: str, run_id: str) -> str:
    """Task id -> phase, apart from the run's hash so that /status is one HGETALL."""
    return f"{run_key(namespace, run_id)}:tasks"


def logs_key(namespace: str, run_id: str) -> str:
    """Task id -> its latest output, apart so that reading a run never loads its logs."""
    return f"{run_key(namespace, run_id)}:logs"


def tombstone_key(namespace: str, run_id: str) -> str:
    """Marks a deleted run for a while, so a late mirror write cannot bring it back."""
    return f"{run_key(namespace, run_id)}:deleted"


def events_channel(namespace: str, run_id: str) -> str:
    """The run's status updates: what an event stream of any replica subscribes to."""
    return f"{run_key(namespace, run_id)}:events"


def retry_claim_key(namespace: str, run_id: str, after: str) -> str:
    """Who makes the retry that follows retry `after`: the one request that set it."""
    return f"{run_key(namespace, run_id)}:retry:{after}"


def runs_key(namespace: str) -> str:
    """The namespace's runs, by creation time."""
    return f"{PREFIX}runs:{namespace}"


def synced_key(scope: str) -> str:
    """The Redis server the operator's mirror of `scope` (a namespace, or `*`) last resynced."""
    return f"{PREFIX}mirror:{scope}:synced"


def templates_key(namespace: str) -> str:
    """Template name -> its current revision (local backend)."""
    return f"{PREFIX}templates:{namespace}"


def template_revisions_key(namespace: str, name: str) -> str:
    """Revision -> that revision of one template; names are DNS labels, never `:`."""
    return f"{PREFIX}template:{namespace}/{name}:revisions"


def schedules_key(namespace: str) -> str:
    """Schedule name -> the schedule as JSON (local backend)."""
    return f"{PREFIX}schedules:{namespace}"


def scheduler_lease_key(namespace: str) -> str:
    """Which API replica fires the namespace's schedules (local backend)."""
    return f"{PREFIX}scheduler:{namespace}:lease"


def claim_key(namespace: str, run_id: str) -> str:
    """Set by the one caller that creates this run (a schedule slot's)."""
    return f"{run_key(namespace, run_id)}:claimed"


def admission_keys(namespace: str, key: str) -> tuple[str, str, str]:
    """A concurrency key's holders, line and waiters' last looks (store/redis_admission.py).
    The key is the user's string (any text): it ends the name, after a fixed prefix."""
    base = f"{PREFIX}admission:{namespace}:{key}"
    return f"{base}:holders", f"{base}:waiting", f"{base}:seen"


def cache_index_key(namespace: str) -> str:
    """The namespace's result cache entries by last use (store/result_cache.py)."""
    return f"{PREFIX}cache:{namespace}"


def cache_entry_key(namespace: str, digest: str) -> str:
    """One recorded result; `digest` is a hex SHA-256, so it cannot name another key."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a cache key digest: {digest!r}")
    return f"{cache_index_key(namespace)}:{digest}"
