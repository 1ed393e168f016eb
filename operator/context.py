"""What every handler of one operator shares (kopf's `memo`), and what a run is told."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stageflow.engine import Executor, TaskExecutor, TaskRegistry, WorkflowRunner
from stageflow.engine.admission import MemoryAdmission
from stageflow.kube import KubeClient, ObjectKey
from stageflow.models.status import Decision
from stageflow.operator.config import OperatorSettings
from stageflow.operator.jobs import JobWatcher
from stageflow.operator.kube_events import KubeEventRecorder
from stageflow.operator.mirror import RedisMirror
from stageflow.operator.status import Outage, StatusWriter
from stageflow.operator.watchcheck import WatchCheck
from stageflow.store.result_cache import ResultCaches

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from stageflow.operator.leader import LeaseElector
    from stageflow.operator.run_manager import RunManager


class RunControl:
    """The run manager's line to one run: cancel, delete, the newest generation.

    Events can come before the run has its runner (it compiles first), so what
    they ask is remembered and applied when the runner is attached.
    """

    def __init__(self, namespace: str, name: str, *, generation: int | None) -> None:
        self.namespace, self.name = namespace, name
        self.generation = generation
        self.runner: WorkflowRunner | None = None
        self.writer: StatusWriter | None = None
        self.cancel_requested = False
        self.force_cancel = False  # the finally tasks too
        self.suspended = False  # spec.suspend
        self.decisions: dict[str, Decision] = {}  # spec.approvals: task id -> answer
        self.finished = False  # its run has ended (it may still wait out its TTL)
        self.again = asyncio.Event()  # a retry arrived while it waited out its TTL
        self.retried: dict[str, Any] | None = None  # the WorkflowRun that asked for it
        self.deleted = asyncio.Event()

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    def attach(self, runner: WorkflowRunner) -> None:
        self.runner = runner
        if self.deleted.is_set():
            runner.cancel("Cancelled: the WorkflowRun was deleted", force=True)
        elif self.cancel_requested:
            runner.cancel(force=self.force_cancel)
        elif self.suspended:
            runner.suspend()
        else:
            runner.resume()  # spec.suspend says so: a resume sent while no operator ran
        for task_id, decision in self.decisions.items():
            runner.decide(task_id, decision)

    def retry(self, obj: dict[str, Any]) -> None:
        """A retry of the ended run, asked for while it waits out its TTL: run it again
        from `obj`, as a new run would be (the API cleared cancel and the answers)."""
        self.cancel_requested = self.force_cancel = False
        self.decisions = {}
        self.retried = obj
        self.again.set()

    def decide(self, approvals: dict[str, Any]) -> None:
        """`spec.approvals` as it now reads: hand each new answer to the run (the runner
        takes the first answer for a task and ignores any other)."""
        for task_id, body in approvals.items():
            if task_id in self.decisions:
                continue
            try:
                decision = Decision.model_validate(body)
            except ValueError:
                logger.warning("approval for %s of %s/%s is not valid; ignored", task_id, *self.key)
                continue
            self.decisions[task_id] = decision
            if self.runner is not None:
                self.runner.decide(task_id, decision)

    def hold(self, *, suspended: bool) -> None:
        """`spec.suspend` as it now reads: suspend or resume the run."""
        if suspended == self.suspended:
            return
        self.suspended = suspended
        if self.runner is not None:
            if suspended:
                self.runner.suspend()
            else:
                self.runner.resume()

    def cancel(self, *, force: bool = False) -> None:
        self.cancel_requested = True
        self.force_cancel = self.force_cancel or force
        if self.runner is not None:
            self.runner.cancel(force=self.force_cancel)

    def delete(self) -> None:
        """The WorkflowRun is gone: stop what runs, write nothing more."""
        self.deleted.set()
        if self.writer is not None:
            self.writer.gone()
        if self.runner is not None:
            self.runner.cancel("Cancelled: the WorkflowRun was deleted", force=True)


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: KubeClient
    tasks: TaskRegistry
    executors: dict[Executor, TaskExecutor]
    mirror: RedisMirror | None = None
    kube_events: KubeEventRecorder | None = None
    # How long a stopping run may take to write its last status (shorter when the Lease
    # was lost: it must be written before a standby can take over).
    shutdown_write_seconds: float = 5.0
    jobs: JobWatcher = field(default_factory=JobWatcher)
    outage: Outage = field(default_factory=Outage)
    # kopf hands each resource a shallow copy of the memo: mutable fields stay shared.
    runs: RunManager | None = None
    elector: LeaseElector | None = None  # with leader election: released at clean-up
    # Is each watch keeping up with the apiserver? (liveness; None: not checked)
    run_watch: WatchCheck | None = None
    job_watch: WatchCheck | None = None
    watch_checking: list[asyncio.Task[None]] = field(default_factory=list)
    scheduling: asyncio.Task[None] | None = None  # the leader's scheduler (schedules.py)
    # Cached tasks' results (engine/cache.py): Redis with STAGEFLOW_REDIS_URL, else memory.
    results: ResultCaches | None = None
    # Concurrency keys per namespace, held in the leader's memory: it is the only one that
    # admits, and the runs it resumes take back what they held (engine/admission.py).
    admissions: dict[str, MemoryAdmission] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # since leading (handlers.py)

    def admission(self, namespace: str) -> MemoryAdmission:
        """The namespace's keys: no new admission in the first `admission_grace_seconds`
        after start, while the runs under way before take their keys back."""
        if namespace not in self.admissions:
            left = self.started + self.settings.admission_grace_seconds - time.monotonic()
            self.admissions[namespace] = MemoryAdmission(grace_seconds=max(0.0, left))
        return self.admissions[namespace]

    @property
    def watch_checks(self) -> list[WatchCheck]:
        return [check for check in (self.run_watch, self.job_watch) if check is not None]
