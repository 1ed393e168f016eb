"""What every handler of one operator shares, handed to them as kopf's `memo`."""

from __future__ import annotations

from dataclasses import dataclass, field

from stageflow.engine import Executor, TaskExecutor, TaskRegistry, WorkflowRunner
from stageflow.kube import KubeClient
from stageflow.operator.config import OperatorSettings
from stageflow.operator.jobs import JobWatcher
from stageflow.operator.mirror import RedisMirror


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: KubeClient
    tasks: TaskRegistry
    executors: dict[Executor, TaskExecutor]
    mirror: RedisMirror | None = None
    jobs: JobWatcher = field(default_factory=JobWatcher)
    # kopf hands each resource a shallow copy of the memo: mutable fields stay shared.
    runners: dict[tuple[str, str], WorkflowRunner] = field(default_factory=dict)
