"""`Client`: the API from ordinary (blocking) Python code, typed with the API's models."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from stageflow import DEFAULT_URL
from stageflow.client import calls
from stageflow.client.calls import (
    Body,
    Call,
    Deadline,
    Event,
    Moment,
    ScheduleBody,
    TemplateBody,
)
from stageflow.client.errors import UnreachableError
from stageflow.models import RunPhase, TaskPhase
from stageflow.models.api import Submitted, TaskInfo
from stageflow.models.records import RunRecord, RunSummary
from stageflow.models.schedule import BackfillResult, OverlapPolicy, ScheduleRecord
from stageflow.models.template import TemplateRecord

T = TypeVar("T")


class Client:
    """`Client("http://127.0.0.1:8080", token=None)`; errors raise `ClientError`s.

    Use it as a context manager, or call `close()`, to release its connections.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._http = httpx.Client(
            base_url=base_url, headers=calls.headers(token), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, body: Body) -> Submitted:
        """Start a run: a request model, a builder's `Stages`/`Dag`, or a JSON-like mapping."""
        return self._send(calls.submit(body))

    def get(self, run_id: str) -> RunRecord:
        return self._send(calls.get(run_id))

    def status(self, run_id: str) -> dict[str, TaskPhase]:
        """Each task's phase, by task id."""
        return self._send(calls.status(run_id))

    def list(
        self, phase: RunPhase | None = None, limit: int | None = 50, *, page_size: int = 100
    ) -> Iterator[RunSummary]:
        """Runs, newest first, fetched `page_size` at a time until `limit` (None: every run)."""
        pager = calls.Pager(phase=phase, limit=limit, page_size=page_size)
        while (call := pager.next_call()) is not None:
            yield from pager.take(self._send(call))

    def cancel(self, run_id: str, *, force: bool = False) -> Submitted:
        """Cancel a run; its finally tasks still run unless `force`."""
        return self._send(calls.cancel(run_id, force=force))

    def retry(
        self, run_id: str, *, from_task: str | None = None, params: dict[str, Any] | None = None
    ) -> Submitted:
        """Retry a Failed or Cancelled run from its failure, in place (`from_task`: re-run
        that task and all after it; `params`: run parameters to override)."""
        return self._send(calls.retry(run_id, from_task=from_task, params=params))

    def approve(
        self,
        run_id: str,
        task: str,
        *,
        comment: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> Submitted:
        """Approve a task that waits for it, with what its `inputs` ask for."""
        call = calls.decide(run_id, task, approved=True, comment=comment, outputs=outputs)
        return self._send(call)

    def reject(self, run_id: str, task: str, *, comment: str | None = None) -> Submitted:
        """Reject a task that waits for approval: it fails."""
        return self._send(calls.decide(run_id, task, approved=False, comment=comment))

    def suspend(self, run_id: str) -> Submitted:
        """No new task of the run starts until `resume` (running ones finish)."""
        return self._send(calls.hold(run_id, suspended=True))

    def resume(self, run_id: str) -> Submitted:
        return self._send(calls.hold(run_id, suspended=False))

    def delete(self, run_id: str) -> None:
        self._send(calls.delete(run_id))

    def logs(self, run_id: str, task: str) -> str:
        return self._send(calls.logs(run_id, task))

    def follow_logs(self, run_id: str, task: str) -> Iterator[str]:
        """A task's log as the task writes it (what it wrote so far first), until it ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=calls.FOLLOW_TIMEOUT_READ)
        path = calls.logs_path(run_id, task)
        try:
            with self._http.stream(
                "GET", path, params={"follow": "true"}, timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    calls.checked(response)
                yield from response.iter_text()
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error

    def tasks(self) -> builtins.list[TaskInfo]:
        """The tasks the server can run, with their parameters."""
        return self._send(calls.tasks())

    # -- templates ------------------------------------------------------------------------

    def put_template(self, name: str, spec: TemplateBody) -> TemplateRecord:
        """Create or replace the template `name` (a mapping in the API's camelCase, or a
        `WorkflowTemplateSpec`). An unchanged spec keeps its revision; a changed one gets
        the next."""
        return self._send(calls.put_template(name, spec))

    def templates(self) -> builtins.list[TemplateRecord]:
        """Every template, by name, each at its current revision."""
        return self._send(calls.templates())

    def template(self, name: str, revision: int | None = None) -> TemplateRecord:
        """The template at its current revision, or at `revision` while it is kept."""
        return self._send(calls.template(name, revision))

    def delete_template(self, name: str) -> None:
        """Delete the template and its revisions; runs made from it keep what they ran."""
        self._send(calls.delete_template(name))

    def submit_template(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        revision: int | None = None,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Submitted:
        """Start a run of the template `template` (its current revision unless `revision`)
        with these values of its params; `name` and `labels` are the run's."""
        call = calls.submit_template(template, params, revision, name=name, labels=labels)
        return self._send(call)

    # -- schedules ------------------------------------------------------------------------

    def put_schedule(self, name: str, spec: ScheduleBody) -> ScheduleRecord:
        """Create or replace the schedule `name` (a mapping in the API's camelCase, or a
        `ScheduleSpec`); its status stays."""
        return self._send(calls.put_schedule(name, spec))

    def schedules(self) -> builtins.list[ScheduleRecord]:
        return self._send(calls.schedules())

    def schedule(self, name: str) -> ScheduleRecord:
        """The schedule with its status: last and next slot, runs going and recent, counts."""
        return self._send(calls.schedule(name))

    def delete_schedule(self, name: str) -> None:
        """Delete the schedule; the runs it started stay."""
        self._send(calls.delete_schedule(name))

    def pause_schedule(self, name: str) -> ScheduleRecord:
        """No slot fires until `resume_schedule` (slots that pass count as missed)."""
        return self._send(calls.hold_schedule(name, suspended=True))

    def resume_schedule(self, name: str) -> ScheduleRecord:
        return self._send(calls.hold_schedule(name, suspended=False))

    def backfill(
        self,
        name: str,
        start: Moment,
        end: Moment,
        overlap_policy: OverlapPolicy | str | None = None,
        dry_run: bool = False,
    ) -> BackfillResult:
        """Fire the schedule's slots of [start, end) (RFC 3339 strings or aware datetimes),
        each at most once, under `overlap_policy` (the API's default: BufferAll);
        `dry_run` only lists them."""
        call = calls.backfill(name, start, end, overlap_policy=overlap_policy, dry_run=dry_run)
        return self._send(call)

    def events(self, run_id: str) -> Iterator[Event]:
        """A `RunRecord` snapshot, then a `RunEvent` per change, until the run ends."""
        return self._events(run_id, read_timeout=calls.STREAM_READ_TIMEOUT)

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Follow the run until it finishes and return it; TimeoutError after `timeout` s."""
        deadline = Deadline(timeout)
        while True:
            try:
                with contextlib.closing(
                    self._events(run_id, read_timeout=deadline.read_timeout())
                ) as stream:
                    for event in stream:
                        if calls.finished(event):
                            break
                        deadline.check(run_id)
            except UnreachableError:
                deadline.check(run_id)
                raise
            record = self.get(run_id)
            if record.status.phase.finished:
                return record
            deadline.check(run_id)

    def _events(self, run_id: str, *, read_timeout: float) -> Generator[Event, None, None]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        try:
            with connect_sse(
                self._http, "GET", calls.events_path(run_id), timeout=timeout
            ) as source:
                if not source.response.is_success:
                    source.response.read()
                    calls.checked(source.response)
                for sse in source.iter_sse():
                    event = calls.read_event(sse)
                    if event is not None:
                        yield event
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error
        return call.read(calls.checked(response))
