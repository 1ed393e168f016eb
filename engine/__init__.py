"""stageflow's pure core: request models, validation, the task registry and the runner.

A task author needs only `task`; hosts (the API's local backend, the operator)
use `compile_workflow` and `WorkflowRunner`. Nothing here knows of Kubernetes,
HTTP or Redis.
"""

from stageflow.engine.coalesce import CoalescingSink
from stageflow.engine.inprocess import InProcessExecutor
from stageflow.engine.interfaces import Attempt, StatusSink, TaskExecutor, TaskResult
from stageflow.engine.plan import Plan, PlannedTask, SpecError, compile_workflow
from stageflow.engine.registry import TaskDefinition, TaskRegistry, registry, task
from stageflow.engine.runner import WorkflowRunner, initial_status
from stageflow.models.request import Executor, RunOptions, Stage, TaskSpec, WorkflowRequest
from stageflow.models.status import RunPhase, RunStatus, TaskPhase, TaskStatus

__all__ = [
    "Attempt",
    "CoalescingSink",
    "Executor",
    "InProcessExecutor",
    "Plan",
    "PlannedTask",
    "RunOptions",
    "RunPhase",
    "RunStatus",
    "SpecError",
    "Stage",
    "StatusSink",
    "TaskDefinition",
    "TaskExecutor",
    "TaskPhase",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "TaskStatus",
    "WorkflowRequest",
    "WorkflowRunner",
    "compile_workflow",
    "initial_status",
    "registry",
    "task",
]
