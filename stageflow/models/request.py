"""The request a user submits, as pydantic models.

These models are the one definition of the request format (docs/request.md): FastAPI
validates bodies against them (a body that does not fit is a 422), the
normaliser turns them into a plan, and the WorkflowRun's spec stores their
normalised form. Aliases are camelCase because that is what users write (and
what Kubernetes objects use); Python code uses snake_case.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from stageflow.models.retry import RetryPolicy

DEFAULT_MAX_ITERATIONS = 10
# Bounds a request states in its schema, so the CRD can state them too (tests/test_kube
# check that the two agree). Sizes that depend on settings are checked in plan.py.
MAX_EXPRESSION_LENGTH = 4096
MAX_LIST_ITEMS = 10_000
MAX_ITEM_COUNT = 1_000_000  # forEach {count}; STAGEFLOW_MAX_FOREACH_ITEMS bounds it lower
MAX_ENTRIES = 256

# A task id appears in URLs, Redis keys and (later) Job names: keep it printable and short.
TaskId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]
TaskName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
Key = Annotated[str, StringConstraints(max_length=253)]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION_LENGTH)]


# The longest wait between two attempts of a task, however many retries it has.
MAX_BACKOFF_SECONDS = 3600.0


class Executor(enum.StrEnum):
    """Where a task runs: in the process that runs the workflow, or as a Kubernetes Job."""

    INPROCESS = "inprocess"
    JOB = "job"


class Model(BaseModel):
    """Base for request models: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class SecretKeyRef(Model):
    """A key of a Secret in the run's namespace (Kubernetes' own `secretKeyRef`)."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class EnvValueSource(Model):
    secret_key_ref: SecretKeyRef


class EnvFrom(Model):
    """An env value read by the Job's pod from a Secret, so the value itself is never in
    the WorkflowRun, Redis or an API answer: `{"valueFrom": {"secretKeyRef": {...}}}`."""

    value_from: EnvValueSource


class ContinueOn(Model):
    """Outcomes of a task that do not stop the run (Argo's `continueOn`)."""

    failed: bool = Field(
        default=False,
        description="A failure (after its retries) is recorded, but the tasks after it start "
        "as if it had succeeded (its outputs are null) and the run does not fail for it.",
    )


class ApprovalSpec(Model):
    """A task that waits for a person (`POST /workflow/{id}/tasks/{task}/approve` or
    `/reject`) instead of running anything."""

    timeout_seconds: float | None = Field(
        default=None, gt=0, le=30 * 24 * 3600, description="How long to wait (none: for ever)."
    )
    on_timeout: Literal["reject", "approve"] = Field(
        default="reject", description="What a wait that runs out counts as."
    )
    inputs: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema of the `outputs` the approver supplies; they feed "
        "{{ tasks.NAME.outputs.KEY }} downstream.",
    )


MAX_CONCURRENCY_RULES = 4
MAX_PRIORITY = 1000


class ConcurrencyRule(Model):
    """At most `max` runs (or tasks) with the same key at once, across all runs (Hatchet's
    `concurrency`: a CEL key expression, a limit, a strategy)."""

    key: Expression = Field(
        description="CEL giving a string: over `params` and `labels` for a run, over the "
        'task\'s rendered `params` for a task (e.g. `params.env`, `"db-" + params.db`).'
    )
    max: int = Field(ge=1, le=100_000, description="How many at once share the key.")
    strategy: Literal["queue", "cancelInProgress", "cancelNewest"] = Field(
        default="queue",
        description="Past `max`: wait in line (`queue`), cancel the runs holding the key so "
        "this one runs next (`cancelInProgress`), or cancel this one (`cancelNewest`). Tasks "
        "take `queue` only.",
    )


MAX_CACHE_TTL_SECONDS = 366 * 24 * 3600
DEFAULT_CACHE_TTL_SECONDS = 24 * 3600


class CacheSpec(Model):
    """Reuse a task's recorded outputs when it runs again with the same inputs, instead of
    running it (docs/cache.md): Prefect's cache policies, Argo's `memoize`."""

    ttl_seconds: int = Field(
        default=DEFAULT_CACHE_TTL_SECONDS,
        ge=1,
        le=MAX_CACHE_TTL_SECONDS,
        description="How long a recorded result is reused (1 s to 366 days; default a day).",
    )
    key: Expression | None = Field(
        default=None,
        description="A CEL expression giving a string, over `params` (the task's rendered "
        "params) and `item` (forEach tasks): the inputs that decide the result. Default: the "
        "task, its rendered params, a Job task's image/command/args, and `version`.",
    )
    version: str | None = Field(
        default=None,
        max_length=253,
        description="Part of the key: change it when the task's code changes, and the "
        "entries made before are not reused.",
    )
    refresh: bool | None = Field(
        default=None, description="Run the task even if a result is recorded, and replace it."
    )


class ItemCount(Model):
    """`forEach: {count: N}`: the items 0 to N-1 (Argo's `withSequence`), for a fan-out too
    big to list in a request, and without a task to produce the list."""

    count: int = Field(ge=0, le=MAX_ITEM_COUNT, description="How many instances: items 0..N-1.")


class TaskSpec(Model):
    """One task of a workflow, in its object form."""

    name: TaskId | None = Field(
        default=None, description="The task's id within the run; defaults to `task`."
    )
    task: TaskName | None = Field(
        default=None, description="The registered task to run (see GET /tasks)."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    executor: Executor | None = Field(default=None, description="`inprocess` (default) or `job`.")
    image: str | None = Field(default=None, min_length=1, max_length=1024)
    command: list[str] | None = Field(default=None, max_length=MAX_ENTRIES)
    args: list[str] | None = Field(default=None, max_length=MAX_ENTRIES)
    env: dict[Key, str | EnvFrom] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="Job tasks' environment: a value, or `{valueFrom: {secretKeyRef: ...}}`.",
    )
    resources: dict[str, Any] | None = None
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Job tasks: run the pod as this service account (it must be allowed by "
        "STAGEFLOW_TASK_SERVICE_ACCOUNTS); without it the pod mounts no token.",
    )
    depends_on: list[TaskId] | None = Field(
        default=None,
        max_length=MAX_LIST_ITEMS,
        description="DAG form only: ids of the tasks this one waits for.",
    )
    when: Expression | None = Field(
        default=None,
        description="A CEL condition; false skips the task (it still counts as done).",
    )
    for_each: list[Any] | str | ItemCount | None = Field(
        default=None,
        description="Run one instance per item (NAME[0], NAME[1], ...): a list, a reference "
        "to one, or `{count: N}` for the items 0..N-1.",
    )
    until: Expression | None = Field(
        default=None,
        description="A CEL condition over {{ outputs.KEY }}: run again until it is true.",
    )
    max_iterations: int | None = Field(
        default=None, ge=1, le=1000, description="With `until`: at most this many runs (10)."
    )
    continue_on: ContinueOn | None = Field(
        default=None, description='`{"failed": true}`: the run goes on past its failure.'
    )
    approval: ApprovalSpec | None = Field(
        default=None, description="Wait for a person to approve or reject, instead of running."
    )
    concurrency: list[ConcurrencyRule] | None = Field(
        default=None,
        max_length=MAX_CONCURRENCY_RULES,
        description="At most `max` tasks with each key run at once, across all runs (e.g. "
        "three writers to one database); the task waits Pending for its turn.",
    )
    cache: CacheSpec | None = Field(
        default=None,
        description="Reuse the outputs of an earlier success with the same inputs "
        "(`ttlSeconds`, `key`, `version`, `refresh`).",
    )
    delivery: Literal["atLeastOnce", "atMostOnce"] | None = Field(
        default=None,
        description="`atLeastOnce` (the default) or `atMostOnce`: an attempt's start is "
        "stored before the task's body runs, and an attempt cut short by the host's death "
        "counts as failed (retried only within `retries`); for work that must not happen "
        "twice.",
    )

    @model_validator(mode="after")
    def _needs_something_to_run(self) -> TaskSpec:
        if self.approval is not None:
            if self.task is not None or self.image is not None:
                raise ValueError("an approval task runs nothing: no `task` or `image`")
            if self.name is None:
                raise ValueError("an approval task needs a `name`")
            if self.for_each is not None or self.until is not None:
                raise ValueError("an approval task takes no `forEach` or `until`")
        elif self.task is None and self.image is None:
            raise ValueError("a task needs `task` (a registered task) or `image` (a container)")
        if self.max_iterations is not None and self.until is None:
            raise ValueError("`maxIterations` goes with `until`")
        if self.until is not None and self.for_each is not None:
            raise ValueError("a task takes `forEach` or `until`, not both")
        return self

    @property
    def tolerates_failure(self) -> bool:
        return self.continue_on is not None and self.continue_on.failed

    @property
    def iteration_limit(self) -> int:
        return self.max_iterations or DEFAULT_MAX_ITERATIONS

    def retry_policy(self) -> RetryPolicy:
        """`retries` and `retryBackoffSeconds` as a policy: doubling, at most an hour."""
        return RetryPolicy(
            initial_interval=self.retry_backoff_seconds,
            maximum_interval=MAX_BACKOFF_SECONDS,
            maximum_attempts=self.retries + 1,
        )


TaskEntry = Annotated[
    TaskName | TaskSpec,
    Field(description="A registered task's name, or a task object."),
]


class Stage(Model):
    """A group of tasks run together (`parallel`) or one after another (`sequential`)."""

    type: Literal["parallel", "sequential"]
    tasks: list[TaskEntry] = Field(min_length=1, max_length=MAX_LIST_ITEMS)


class RunOptions(Model):
    """Options that apply to the whole run."""

    name: str | None = Field(default=None, max_length=253, description="A label for humans.")
    labels: dict[Key, Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=dict, max_length=64
    )
    fail_fast: bool = Field(
        default=True,
        description="After a failure no new task starts; running ones finish; the rest are "
        "Skipped.",
    )
    parallelism: int | None = Field(default=None, ge=1, description="Max tasks running at once.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    executor: Executor = Field(
        default=Executor.INPROCESS, description="Default executor for tasks that name none."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Run parameters, for {{ params.KEY }} references."
    )
    finally_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 24 * 3600,
        description="The `finally` tasks' own time budget (the run's timeoutSeconds does not "
        "cut them short).",
    )
    concurrency: list[ConcurrencyRule] | None = Field(
        default=None,
        max_length=MAX_CONCURRENCY_RULES,
        description="Limits shared with other runs; a run must fit every one to start, and "
        "waits `Queued` until it does.",
    )
    priority: int = Field(
        default=0,
        ge=-MAX_PRIORITY,
        le=MAX_PRIORITY,
        description="Order of admission among queued runs, higher first; each point is worth "
        "STAGEFLOW_PRIORITY_AGING_SECONDS of waiting, so a low one is never starved.",
    )
    refresh: bool | None = Field(
        default=None,
        description="Run every task that has a `cache` even if a result is recorded, and "
        "replace the recorded results.",
    )


def _one_of_the_two_forms(schema: dict[str, Any]) -> None:
    """Exactly one of `workflow` or `dag`, and neither may be null. The fields stay
    `X | None` for validation (a union with a hidden None would name its branches in
    every 422: `body.workflow.list[Stage].0.type`); only the schema drops the null."""
    schema["oneOf"] = [{"required": ["workflow"]}, {"required": ["dag"]}]
    for name in ("workflow", "dag"):
        field = schema["properties"][name]
        options = [option for option in field.pop("anyOf", []) if option.get("type") != "null"]
        if options:
            field.update(options[0])
        field.pop("default", None)


class WorkflowRequest(RunOptions):
    """The body of POST /workflow: exactly one of `workflow` (stages) or `dag`."""

    # The schema says what the validator below checks, so clients (and fuzzers) know it.
    model_config = ConfigDict(json_schema_extra=_one_of_the_two_forms)

    workflow: list[Stage] | None = Field(default=None, min_length=1, max_length=MAX_LIST_ITEMS)
    dag: list[TaskSpec] | None = Field(default=None, min_length=1, max_length=MAX_LIST_ITEMS)
    finally_: list[TaskEntry] | None = Field(
        default=None,
        alias="finally",
        min_length=1,
        max_length=MAX_LIST_ITEMS,
        description="Tasks that run once the main graph has ended, whatever its outcome "
        "(Tekton's `finally`, Argo's `onExit`); `dependsOn` orders them among themselves.",
    )

    @model_validator(mode="after")
    def _exactly_one_form(self) -> WorkflowRequest:
        if (self.workflow is None) == (self.dag is None):
            raise ValueError("give exactly one of `workflow` (stages) or `dag`")
        if self.workflow is not None:
            for stage in self.workflow:
                for entry in stage.tasks:
                    if isinstance(entry, TaskSpec) and entry.depends_on is not None:
                        raise ValueError(
                            "`dependsOn` belongs to the `dag` form; stages already order tasks"
                        )
        return self

    def options(self) -> RunOptions:
        """The run-level options alone."""
        return RunOptions.model_validate(self.model_dump(include=set(RunOptions.model_fields)))
