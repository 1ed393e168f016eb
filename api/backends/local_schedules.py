"""The local backend's scheduler host: schedules fired inside the API process (no cluster).

Several replicas on one Redis share the work through a lease: only the replica holding it
sees any schedule (the others' rounds are empty), and a replica that dies hands it on
when the lease runs out. A slot still fires once if two replicas ever overlap: its run id
derives from (schedule, slot), the first to claim that id creates the run, and every
status write is conditional on the version read (store/catalog.py).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

from stageflow.api.errors import InvalidRequestError, RunFinishedError, RunNotFoundError
from stageflow.engine.plan import SpecError
from stageflow.engine.schedules import Firing
from stageflow.engine.workflow_templates import slot_request
from stageflow.models.schedule import ScheduleRecord, ScheduleStatus
from stageflow.models.status import RunPhase
from stageflow.store import RunStore, StoreUnavailableError

if TYPE_CHECKING:
    from stageflow.api.backends.local import LocalBackend

logger = logging.getLogger(__name__)
# How long the lease outlives a round: a replica that stopped renewing is replaced then.
LEASE_ROUNDS = 3


class LocalScheduleHost:
    def __init__(self, backend: LocalBackend, store: RunStore, *, poll_seconds: float) -> None:
        self._backend, self._store, self._poll_seconds = backend, store, poll_seconds
        self._lease = store.scheduler_lease()
        self._holder = str(uuid.uuid4())

    async def schedules(self) -> list[ScheduleRecord]:
        seconds = self._poll_seconds * LEASE_ROUNDS
        if not await self._lease.hold(self._holder, seconds):
            return []  # another replica schedules now
        return await self._store.schedules().list()

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        return await self._store.schedules().write_status(record, status)

    async def pause(self, record: ScheduleRecord, reason: str) -> None:
        await self._store.schedules().set_suspend(record.name, True)

    async def start_run(self, record: ScheduleRecord, firing: Firing) -> None:
        body, origin = await slot_request(
            record,
            firing.scheduled_time,
            self._backend.catalog.templates.get,
            backfill=firing.backfill,
        )
        try:
            await self._backend.submit(
                body, submitted_by=f"schedule:{record.name}", origin=origin, run_id=firing.run_id
            )
        except InvalidRequestError as error:  # cannot run here (a Job task): not retried
            raise SpecError(error.detail) from None
        # RunConflictError (another replica claimed it and is creating it, or died doing so)
        # is transient: the round is done again, and finds the run, or claims it anew.

    async def run_phases(
        self, record: ScheduleRecord, run_ids: list[str]
    ) -> dict[str, RunPhase | None]:
        phases: dict[str, RunPhase | None] = {}
        for run_id in run_ids:
            found = await self._store.get(run_id)
            phases[run_id] = None if found is None else found.status.phase
        return phases

    async def cancel_run(self, record: ScheduleRecord, run_id: str) -> None:
        with contextlib.suppress(RunNotFoundError, RunFinishedError):
            await self._backend.cancel(run_id)

    async def delete_run(self, record: ScheduleRecord, run_id: str) -> None:
        with contextlib.suppress(RunNotFoundError):
            await self._backend.delete(run_id)

    async def release(self) -> None:
        with contextlib.suppress(StoreUnavailableError):
            await self._lease.release(self._holder)
