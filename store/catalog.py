"""Templates and schedules as the local backend keeps them (the kubernetes backend keeps
them as WorkflowTemplate and Schedule resources, kube/catalog_api.py, behind the same two
protocols, so the API's routes and the scheduler serve both the same way).

- `TemplateRepo`: a template under a name; every change of its spec is a new revision
  (a counter from 1), and the last `keep` revisions stay readable.
- `ScheduleRepo`: a schedule's spec, written by users, and its status, written by the
  scheduler (and by a backfill) only if the schedule did not change since it was read
  (`version`), so two writers never lose each other's work.
- `SchedulerLease`: which API replica runs the local scheduler (one at a time).

The in-memory versions are here; the Redis ones in redis_catalog.py.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

from stageflow.models.schedule import ScheduleRecord, ScheduleSpec, ScheduleStatus
from stageflow.models.status import utcnow
from stageflow.models.template import TemplateRecord, WorkflowTemplateSpec

DEFAULT_REVISION_HISTORY = 10
# How long a schedule slot's claim holds: the claimer creates the run meanwhile; if it died
# first, the slot is claimed again after this (and its run made then), never lost.
CLAIM_SECONDS = 30.0


class TemplateRepo(Protocol):
    async def put(self, name: str, spec: WorkflowTemplateSpec) -> tuple[TemplateRecord, bool]:
        """Create or replace; (the template now, whether it was created). A spec with the
        digest of the current one is no change: the same revision."""
        ...

    async def get(self, name: str, revision: int | None = None) -> TemplateRecord | None:
        """The current revision, or revision `revision` while it is kept."""
        ...

    async def list(self) -> list[TemplateRecord]: ...

    async def delete(self, name: str) -> bool: ...


class ScheduleRepo(Protocol):
    async def put(self, name: str, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        """Create or replace the spec (the status stays); (the schedule, whether created)."""
        ...

    async def get(self, name: str) -> ScheduleRecord | None: ...

    async def list(self) -> list[ScheduleRecord]: ...

    async def delete(self, name: str) -> bool: ...

    async def set_suspend(self, name: str, suspend: bool) -> ScheduleRecord | None: ...

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        """Write `status` if the schedule is still at `record.version`; False if not (or gone)."""
        ...


class SchedulerLease(Protocol):
    async def hold(self, holder: str, seconds: float) -> bool:
        """Take or renew the lease for `holder`; False while another holds it."""
        ...

    async def release(self, holder: str) -> None: ...


class Claims(Protocol):
    async def claim(self, run_id: str) -> bool:
        """True for the first caller within CLAIM_SECONDS: it creates the run (a schedule
        slot's); the run's existence, checked first, is what says the slot fired."""
        ...


class MemoryTemplates:
    """One process's templates: revision specs kept in a dict per name."""

    def __init__(self, *, keep: int = DEFAULT_REVISION_HISTORY) -> None:
        self._keep = keep
        self._current: dict[str, TemplateRecord] = {}
        self._revisions: dict[str, dict[int, TemplateRecord]] = {}

    async def put(self, name: str, spec: WorkflowTemplateSpec) -> tuple[TemplateRecord, bool]:
        now, digest = utcnow(), spec.digest()
        current = self._current.get(name)
        if current is not None and current.digest == digest:
            return self._with_revisions(current), False
        revision = 1 if current is None else current.revision + 1
        record = TemplateRecord(
            name=name,
            revision=revision,
            digest=digest,
            created_at=now if current is None else current.created_at,
            updated_at=now,
            spec=spec,
        )
        kept = self._revisions.setdefault(name, {})
        kept[revision] = record
        for old in sorted(kept)[: -self._keep]:
            del kept[old]
        self._current[name] = record
        return self._with_revisions(record), current is None

    async def get(self, name: str, revision: int | None = None) -> TemplateRecord | None:
        current = self._current.get(name)
        if current is None:
            return None
        found = current if revision is None else self._revisions[name].get(revision)
        return None if found is None else self._with_revisions(found)

    async def list(self) -> list[TemplateRecord]:
        return [self._with_revisions(self._current[name]) for name in sorted(self._current)]

    async def delete(self, name: str) -> bool:
        self._revisions.pop(name, None)
        return self._current.pop(name, None) is not None

    def _with_revisions(self, record: TemplateRecord) -> TemplateRecord:
        return record.model_copy(update={"revisions": sorted(self._revisions[record.name])})


class MemorySchedules:
    """One process's schedules; `version` counts every write."""

    def __init__(self) -> None:
        self._records: dict[str, ScheduleRecord] = {}
        self._writes = 0

    async def put(self, name: str, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        current = self._records.get(name)
        if current is None:
            record = ScheduleRecord(
                name=name, uid=str(uuid.uuid4()), created_at=utcnow(), spec=spec
            )
        else:
            record = current.model_copy(update={"spec": spec})
        return self._store(record), current is None

    async def get(self, name: str) -> ScheduleRecord | None:
        return self._records.get(name)

    async def list(self) -> list[ScheduleRecord]:
        return [self._records[name] for name in sorted(self._records)]

    async def delete(self, name: str) -> bool:
        return self._records.pop(name, None) is not None

    async def set_suspend(self, name: str, suspend: bool) -> ScheduleRecord | None:
        current = self._records.get(name)
        if current is None:
            return None
        spec = current.spec.model_copy(update={"suspend": suspend})
        return self._store(current.model_copy(update={"spec": spec}))

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        current = self._records.get(record.name)
        if current is None or current.version != record.version:
            return False
        self._store(current.model_copy(update={"status": status}))
        return True

    def _store(self, record: ScheduleRecord) -> ScheduleRecord:
        self._writes += 1
        stored = record.model_copy(update={"version": str(self._writes)}, deep=True)
        self._records[record.name] = stored
        return stored


class OwnLease:
    """The lease of a process that is the only scheduler there is (the memory store)."""

    async def hold(self, holder: str, seconds: float) -> bool:
        return True

    async def release(self, holder: str) -> None:
        return None


class MemoryClaims:
    """Claims that lapse after `seconds` (long enough to create the run they stand for)."""

    def __init__(self, *, seconds: float = CLAIM_SECONDS) -> None:
        self._seconds = seconds
        self._claimed: dict[str, float] = {}

    async def claim(self, run_id: str) -> bool:
        now = time.monotonic()
        self._claimed = {key: until for key, until in self._claimed.items() if until > now}
        if run_id in self._claimed:
            return False
        self._claimed[run_id] = now + self._seconds
        return True
