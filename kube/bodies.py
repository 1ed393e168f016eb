"""The Kubernetes objects stageflow writes and reads, as TypedDicts (kopf's `bodies.py` is
the model: kopf/_cogs/structs/bodies.py).

At runtime every body here is the plain dict the apiserver sends and takes; the types only
let mypy check the fields stageflow itself writes (a misspelt `holderIdentity` in a Lease, a
status field the CRD does not have) and says what a reader may expect to find. Each is
`total=False` where Kubernetes leaves a field out (a new object has no `status`, a Lease
nobody holds has no `holderIdentity`); a reader still uses `.get` for those.

Typed down to the fields stageflow touches, no further: what a body carries beyond them
(a pod's spec, the fields the apiserver adds) is `Any`, as in kopf. A WorkflowRun's `spec`
is the request itself, whose schema is pydantic's (`WorkflowRequest` validates it when it
is read back, crds/workflowrun.yaml declares it), so it stays a plain dict here rather than
a third copy of that schema; so do a task's entries in the status (`TaskStatus`' dump).

Readers of objects that also arrive from kopf's watch (plain dicts) take `Mapping[str, Any]`
(kube/resource.py, kube/jobs.py): a TypedDict is one, a kopf body is one, and reading
needs no more.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict


class OwnerReference(TypedDict, total=False):
    apiVersion: Required[str]
    kind: Required[str]
    name: Required[str]
    uid: Required[str]
    controller: bool
    blockOwnerDeletion: bool


class ObjectReference(TypedDict, total=False):
    """What an Event is about (its `involvedObject`)."""

    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    labels: dict[str, str]
    annotations: dict[str, str]
    creationTimestamp: str
    deletionTimestamp: str
    finalizers: list[str]
    ownerReferences: list[OwnerReference]


# -- WorkflowRun (stageflow.dev/v1alpha1), as kube/resource.py writes it ---------------------


class Condition(TypedDict, total=False):
    """A Kubernetes-style condition (the run's `Succeeded`, a Job's `Complete`/`Failed`)."""

    type: Required[str]
    status: Required[str]  # "True", "False" or "Unknown"
    reason: str
    message: str
    lastTransitionTime: str


class WorkflowRunStatus(TypedDict, total=False):
    """The status subresource the operator writes (kube/resource.py's `status_patch`). In a
    merge patch a None removes the field."""

    phase: str
    progress: str
    startedAt: str | None
    finishedAt: str | None
    message: str | None
    toleratedFailures: list[str] | None
    mainPhase: str | None
    suspended: bool | None
    queue: dict[str, Any] | None  # while Queued: keys, position, since
    retries: list[dict[str, Any]] | None
    conditions: list[Condition]
    tasks: dict[str, dict[str, Any] | None]  # task id -> `TaskStatus` dumped; None removes it
    folded: list[dict[str, Any]] | None  # a big run's alike entries, `FoldedTasks` dumped
    observedGeneration: int


# `spec.retryRequest`: a retry the API asked for and the operator carries out once (applied
# when the status's `retries` holds its id). The functional form, for the key `from`.
RetryRequestBody = TypedDict(
    "RetryRequestBody",
    {
        "id": str,
        "from": str | None,
        "params": dict[str, Any] | None,
        "requestedBy": str | None,
        "requestedAt": str,
    },
    total=False,
)


class WorkflowRun(TypedDict, total=False):
    """A WorkflowRun object, or a merge patch of one (every field optional)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]  # the request (`WorkflowRequest`'s dump), `cancelRequested`, `forceCancel`
    status: WorkflowRunStatus


# -- batch/v1 Job and its pods: what the operator writes and reads ---------------------------


class JobSpec(TypedDict, total=False):
    backoffLimit: int
    ttlSecondsAfterFinished: int
    activeDeadlineSeconds: int
    suspend: bool
    template: dict[str, Any]  # the pod template: written by kube/jobs.py, never read back


class JobStatus(TypedDict, total=False):
    conditions: list[Condition]
    active: int
    succeeded: int
    failed: int
    startTime: str
    completionTime: str


class Job(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: JobSpec
    status: JobStatus


class ContainerStateTerminated(TypedDict, total=False):
    exitCode: int
    reason: str
    message: str  # the termination message: a task's outputs, or why it failed


class ContainerState(TypedDict, total=False):
    terminated: ContainerStateTerminated
    running: dict[str, Any]
    waiting: dict[str, Any]


class ContainerStatus(TypedDict, total=False):
    name: Required[str]
    state: ContainerState


class PodStatus(TypedDict, total=False):
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    containerStatuses: list[ContainerStatus]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: PodStatus


# -- coordination.k8s.io/v1 Lease (leader election) -------------------------------------------


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str | None  # None: released, the next candidate takes it at once
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class Lease(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: LeaseSpec


# -- core/v1 Event (what `kubectl describe` shows of a WorkflowRun) ---------------------------


class EventSource(TypedDict, total=False):
    component: str
    host: str


class KubeEvent(TypedDict, total=False):
    """A core/v1 Event (`KubeEvent`, not `Event`: an SSE update and a watch event are
    events too)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    involvedObject: Required[ObjectReference]
    reason: str
    message: str
    type: str  # Normal or Warning
    source: EventSource
    reportingComponent: str
    firstTimestamp: str
    lastTimestamp: str
    count: int
