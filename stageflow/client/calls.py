"""Every API call described once: the request it sends and how its answer is read.

`Client` and `AsyncClient` share these descriptions and differ only in how they
send, so a path, a query parameter or a response model is written in one place.
Answers are parsed into the API's own pydantic models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent
from pydantic import TypeAdapter

from stageflow.client.errors import UnreachableError, error_for
from stageflow.models import RunPhase, TaskPhase, WorkflowRequest
from stageflow.models.api import RunList, Submitted, TaskInfo
from stageflow.models.records import RunEvent, RunRecord, RunSummary
from stageflow.models.schedule import (
    BackfillResult,
    OverlapPolicy,
    ScheduleList,
    ScheduleRecord,
    ScheduleSpec,
)
from stageflow.models.status import FanoutSummary, TaskStatus
from stageflow.models.task_ids import instance_of
from stageflow.models.template import TemplateList, TemplateRecord, WorkflowTemplateSpec

T = TypeVar("T")

PAGE_MAX = 500  # the API's largest `limit`
# The API sends a keep-alive comment every 15 s; this long without a byte, the stream is dead.
STREAM_READ_TIMEOUT = 60.0

Event = RunRecord | RunEvent
"""What `events()` yields: a `RunRecord` snapshot first, then a `RunEvent` per change."""

_PHASES = TypeAdapter(dict[str, TaskPhase])
_TASKS = TypeAdapter(list[TaskInfo])


class Buildable(Protocol):
    """Anything that produces a request, such as the builder's `Stages` and `Dag`."""

    def request(self) -> WorkflowRequest: ...


Body = WorkflowRequest | Mapping[str, Any] | Buildable
TemplateBody = WorkflowTemplateSpec | Mapping[str, Any]
ScheduleBody = ScheduleSpec | Mapping[str, Any]
Moment = datetime | str


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, str | int] = field(default_factory=dict)
    body: Any = None


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def unreachable(base_url: str, error: httpx.TransportError) -> UnreachableError:
    return UnreachableError(f"{base_url}: {error or type(error).__name__}")


def checked(response: httpx.Response) -> httpx.Response:
    """The response if it is a success; else the API's error as an exception.
    A streamed response must have been read first."""
    if response.is_success:
        return response
    try:
        body = response.json()
        detail = body["detail"] if isinstance(body, dict) and "detail" in body else body
    except (ValueError, UnicodeDecodeError):
        detail = response.text or response.reason_phrase
    raise error_for(response.status_code, detail)


def request_body(body: Body) -> Any:
    """The JSON to send. A mapping goes as it is, so the API validates it (a 422 names
    the problem); a model or a builder is dumped in the API's camelCase."""
    if isinstance(body, Mapping):
        return dict(body)
    request = body if isinstance(body, WorkflowRequest) else body.request()
    return request.model_dump(mode="json", by_alias=True, exclude_none=True)


def submit(body: Body) -> Call[Submitted]:
    return Call("POST", "/workflow", _model(Submitted), body=request_body(body))


def get(run_id: str) -> Call[RunRecord]:
    return Call("GET", f"/workflow/{run_id}", _model(RunRecord))


def status(run_id: str) -> Call[dict[str, TaskPhase]]:
    return Call("GET", f"/workflow/{run_id}/status", lambda r: _PHASES.validate_json(r.content))


def page(*, phase: RunPhase | None, limit: int, cursor: str | None) -> Call[RunList]:
    params: dict[str, str | int] = {"limit": limit}
    if phase is not None:
        params["phase"] = phase.value
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/workflows", _model(RunList), params=params)


def cancel(run_id: str, *, force: bool = False) -> Call[Submitted]:
    body = {"force": True} if force else None
    return Call("POST", f"/workflow/{run_id}/cancel", _model(Submitted), body=body)


def retry(
    run_id: str, *, from_task: str | None = None, params: dict[str, Any] | None = None
) -> Call[Submitted]:
    body: dict[str, Any] = {}
    if from_task is not None:
        body["from"] = from_task
    if params:
        body["params"] = params
    return Call("POST", f"/workflow/{run_id}/retry", _model(Submitted), body=body)


def decide(
    run_id: str,
    task: str,
    *,
    approved: bool,
    comment: str | None = None,
    outputs: dict[str, Any] | None = None,
) -> Call[Submitted]:
    body: dict[str, Any] = {}
    if comment is not None:
        body["comment"] = comment
    if outputs:
        body["outputs"] = outputs
    verb = "approve" if approved else "reject"
    return Call("POST", f"/workflow/{run_id}/tasks/{task}/{verb}", _model(Submitted), body=body)


def hold(run_id: str, *, suspended: bool) -> Call[Submitted]:
    action = "suspend" if suspended else "resume"
    return Call("POST", f"/workflow/{run_id}/{action}", _model(Submitted))


def delete(run_id: str) -> Call[None]:
    return Call("DELETE", f"/workflow/{run_id}", lambda _: None)


def logs_path(run_id: str, task: str) -> str:
    return f"/workflow/{run_id}/tasks/{task}/logs"


def logs(run_id: str, task: str) -> Call[str]:
    return Call("GET", logs_path(run_id, task), lambda r: r.text)


# A followed log may stay quiet as long as its task does: no read timeout (TCP keeps watch).
FOLLOW_TIMEOUT_READ: float | None = None


def tasks() -> Call[list[TaskInfo]]:
    return Call("GET", "/tasks", lambda r: _TASKS.validate_json(r.content))


def events_path(run_id: str) -> str:
    return f"/workflow/{run_id}/events"


def read_event(sse: ServerSentEvent) -> Event | None:
    """A typed event; None for an event this client does not know (newer servers)."""
    if sse.event == "snapshot":
        return RunRecord.model_validate(json.loads(sse.data))
    if sse.event == "update":
        return RunEvent.model_validate(json.loads(sse.data))
    return None


def apply(record: RunRecord | None, event: Event) -> RunRecord:
    """The run after `event`: a snapshot replaces it, an update changes its phase, progress,
    message, its forEach counts (`fanouts`) and the tasks it names. Folding `events()` this
    way gives the live run.

    A big run (its snapshot or an update has `omitted`: docs/big-runs.md) is followed by its
    counts: an update names an instance while it is under way or failed, never when it
    succeeds, so the instances kept are, per forEach task and phase, the most recently named
    ones, no more than `fanouts` counts in that phase (`get` lists them exactly)."""
    if isinstance(event, RunRecord):
        return event
    if record is None:
        raise ValueError(f"an update of run {event.run_id} came before its snapshot")
    fanouts = event.fanouts if event.fanouts is not None else record.status.fanouts
    omitted = None
    if event.omitted is None and record.status.omitted is None:
        tasks = {**record.status.tasks, **event.tasks}
    else:
        tasks = _followed(record.status.tasks, event.tasks, fanouts or {})
        kept = sum(1 for task_id in tasks if instance_of(task_id) is not None)
        omitted = max(0, sum(fanout.total for fanout in (fanouts or {}).values()) - kept)
    status = record.status.model_copy(
        update={
            "phase": event.phase,
            "progress": event.progress,
            "message": event.message,
            "tasks": tasks,
            "fanouts": fanouts,
            "omitted": omitted,
        }
    )
    return record.model_copy(update={"status": status})


def _followed(
    before: Mapping[str, TaskStatus],
    changed: Mapping[str, TaskStatus],
    fanouts: Mapping[str, FanoutSummary],
) -> dict[str, TaskStatus]:
    """A big run's entries after an update: those it names moved last (the newest), then,
    per forEach task, only as many instances in each listed phase as it counts there."""
    tasks = {task_id: task for task_id, task in before.items() if task_id not in changed}
    tasks.update(changed)
    found: dict[tuple[str, TaskPhase], list[str]] = {}
    for task_id, task in tasks.items():
        instance = instance_of(task_id)
        if instance is not None:
            found.setdefault((instance[0], task.phase), []).append(task_id)
    for (parent, phase), ids in found.items():
        fanout = fanouts.get(parent)
        counted = fanout.phases.get(phase.value, 0) if fanout is not None else 0
        for task_id in ids[: max(0, len(ids) - counted)]:  # the oldest named go first
            del tasks[task_id]
    return tasks


def finished(event: Event) -> bool:
    phase = event.status.phase if isinstance(event, RunRecord) else event.phase
    return phase.finished


@dataclass
class Pager:
    """Walks the newest-first listing page by page until `limit` runs (None: all)."""

    phase: RunPhase | None
    limit: int | None
    page_size: int = 100
    cursor: str | None = None
    seen: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            self.done = True
        self.page_size = max(1, min(PAGE_MAX, self.page_size))

    def next_call(self) -> Call[RunList] | None:
        if self.done:
            return None
        size = self.page_size if self.limit is None else min(self.page_size, self.limit - self.seen)
        return page(phase=self.phase, limit=size, cursor=self.cursor)

    def take(self, result: RunList) -> list[RunSummary]:
        self.seen += len(result.items)
        self.cursor = result.next_cursor
        self.done = self.cursor is None or (self.limit is not None and self.seen >= self.limit)
        return result.items


@dataclass
class Deadline:
    """`wait(timeout=...)` for the sync client (the async one uses asyncio.timeout)."""

    timeout: float | None
    start: float = field(default_factory=time.monotonic)

    def read_timeout(self) -> float:
        if self.timeout is None:
            return STREAM_READ_TIMEOUT
        return max(0.001, min(STREAM_READ_TIMEOUT, self.timeout - self.elapsed()))

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.timeout is not None and self.elapsed() >= self.timeout

    def check(self, run_id: str) -> None:
        if self.expired():
            raise TimeoutError(f"run {run_id} did not finish within {self.timeout} s")


# -- templates and schedules --------------------------------------------------------------


def put_template(name: str, spec: TemplateBody) -> Call[TemplateRecord]:
    """Create or replace: an unchanged spec keeps its revision, a changed one gets the next."""
    body = spec.normalised_json() if isinstance(spec, WorkflowTemplateSpec) else dict(spec)
    return Call("PUT", _template_path(name), _model(TemplateRecord), body=body)


def templates() -> Call[list[TemplateRecord]]:
    read = _model(TemplateList)
    return Call("GET", "/templates", lambda r: read(r).items)


def template(name: str, revision: int | None = None) -> Call[TemplateRecord]:
    path = _template_path(name)
    if revision is not None:
        path += f"/revisions/{int(revision)}"
    return Call("GET", path, _model(TemplateRecord))


def delete_template(name: str) -> Call[None]:
    return Call("DELETE", _template_path(name), lambda _: None)


def submit_template(
    template: str,
    params: Mapping[str, Any] | None = None,
    revision: int | None = None,
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Call[Submitted]:
    """POST /workflow by reference: `templateRef` (its current revision unless `revision`)
    and the values of its params; `name` and `labels` are the run's."""
    ref: dict[str, Any] = {"name": template}
    if revision is not None:
        ref["revision"] = revision
    body: dict[str, Any] = {"templateRef": ref, "params": dict(params or {})}
    if name is not None:
        body["name"] = name
    if labels:
        body["labels"] = dict(labels)
    return Call("POST", "/workflow", _model(Submitted), body=body)


def put_schedule(name: str, spec: ScheduleBody) -> Call[ScheduleRecord]:
    """Create or replace (the status the scheduler keeps stays)."""
    body = (
        spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(spec, ScheduleSpec)
        else dict(spec)
    )
    return Call("PUT", _schedule_path(name), _model(ScheduleRecord), body=body)


def schedules() -> Call[list[ScheduleRecord]]:
    read = _model(ScheduleList)
    return Call("GET", "/schedules", lambda r: read(r).items)


def schedule(name: str) -> Call[ScheduleRecord]:
    return Call("GET", _schedule_path(name), _model(ScheduleRecord))


def delete_schedule(name: str) -> Call[None]:
    return Call("DELETE", _schedule_path(name), lambda _: None)


def hold_schedule(name: str, *, suspended: bool) -> Call[ScheduleRecord]:
    action = "pause" if suspended else "resume"
    return Call("POST", f"{_schedule_path(name)}/{action}", _model(ScheduleRecord))


def backfill(
    name: str,
    start: Moment,
    end: Moment,
    *,
    overlap_policy: OverlapPolicy | str | None = None,
    dry_run: bool = False,
) -> Call[BackfillResult]:
    """The slots of [start, end): queued to fire, or only listed with `dry_run`."""
    body: dict[str, Any] = {"start": _moment(start), "end": _moment(end), "dryRun": dry_run}
    if overlap_policy is not None:
        body["overlapPolicy"] = str(overlap_policy)
    return Call("POST", f"{_schedule_path(name)}/backfill", _model(BackfillResult), body=body)


def _template_path(name: str) -> str:
    return f"/templates/{quote(name, safe='')}"


def _schedule_path(name: str) -> str:
    return f"/schedules/{quote(name, safe='')}"


def _moment(value: Moment) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def _model(kind: type[T]) -> Callable[[httpx.Response], T]:
    adapter = TypeAdapter(kind)
    return lambda response: adapter.validate_json(response.content)
