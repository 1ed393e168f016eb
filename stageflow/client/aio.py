"""`AsyncClient`: the same methods as `Client`, awaited (iterators are async)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from stageflow import DEFAULT_URL
from stageflow.client import calls
from stageflow.client.calls import (
    Body,
    Call,
    Event,
    Moment,
    ScheduleBody,
    TemplateBody,
)
from stageflow.models import RunPhase, TaskPhase
from stageflow.models.api import Submitted, TaskInfo
from stageflow.models.records import RunRecord, RunSummary
from stageflow.models.schedule import BackfillResult, OverlapPolicy, ScheduleRecord
from stageflow.models.template import TemplateRecord

T = TypeVar("T")


class AsyncClient:
    """`AsyncClient("http://127.0.0.1:8080", token=None)`; errors raise `ClientError`s.

    Use it as an async context manager, or await `close()`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=calls.headers(token), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def submit(self, body: Body) -> Submitted:
        """Start a run: a request model, a builder's `Stages`/`Dag`, or a JSON-like mapping."""
        return await self._send(calls.submit(body))

    async def get(self, run_id: str) -> RunRecord:
        return await self._send(calls.get(run_id))

    async def status(self, run_id: str) -> dict[str, TaskPhase]:
        """Each task's phase, by task id."""
        return await self._send(calls.status(run_id))

    async def list(
        self, phase: RunPhase | None = None, limit: int | None = 50, *, page_size: int = 100
    ) -> AsyncIterator[RunSummary]:
        """Runs, newest first, fetched `page_size` at a time until `limit` (None: every run)."""
        pager = calls.Pager(phase=phase, limit=limit, page_size=page_size)
        while (call := pager.next_call()) is not None:
            for summary in pager.take(await self._send(call)):
                yield summary

    async def cancel(self, run_id: str, *, force: bool = False) -> Submitted:
        """Cancel a run; its finally tasks still run unless `force`."""
        return await self._send(calls.cancel(run_id, force=force))

    async def retry(
        self, run_id: str, *, from_task: str | None = None, params: dict[str, Any] | None = None
    ) -> Submitted:
        """Retry a Failed or Cancelled run from its failure, in place (`from_task`: re-run
        that task and all after it; `params`: run parameters to override)."""
        return await self._send(calls.retry(run_id, from_task=from_task, params=params))

    async def approve(
        self,
        run_id: str,
        task: str,
        *,
        comment: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> Submitted:
        """Approve a task that waits for it, with what its `inputs` ask for."""
        call = calls.decide(run_id, task, approved=True, comment=comment, outputs=outputs)
        return await self._send(call)

    async def reject(self, run_id: str, task: str, *, comment: str | None = None) -> Submitted:
        """Reject a task that waits for approval: it fails."""
        return await self._send(calls.decide(run_id, task, approved=False, comment=comment))

    async def suspend(self, run_id: str) -> Submitted:
        """No new task of the run starts until `resume` (running ones finish)."""
        return await self._send(calls.hold(run_id, suspended=True))

    async def resume(self, run_id: str) -> Submitted:
        return await self._send(calls.hold(run_id, suspended=False))

    async def delete(self, run_id: str) -> None:
        await self._send(calls.delete(run_id))

    async def logs(self, run_id: str, task: str) -> str:
        return await self._send(calls.logs(run_id, task))

    async def follow_logs(self, run_id: str, task: str) -> AsyncGenerator[str, None]:
        """A task's log as the task writes it (what it wrote so far first), until it ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=calls.FOLLOW_TIMEOUT_READ)
        path = calls.logs_path(run_id, task)
        try:
            async with self._http.stream(
                "GET", path, params={"follow": "true"}, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    calls.checked(response)
                async for text in response.aiter_text():
                    yield text
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error

    async def tasks(self) -> builtins.list[TaskInfo]:
        """The tasks the server can run, with their parameters."""
        return await self._send(calls.tasks())

    # -- templates ------------------------------------------------------------------------

    async def put_template(self, name: str, spec: TemplateBody) -> TemplateRecord:
        """Create or replace the template `name` (a mapping in the API's camelCase, or a
        `WorkflowTemplateSpec`). An unchanged spec keeps its revision; a changed one gets
        the next."""
        return await self._send(calls.put_template(name, spec))

    async def templates(self) -> builtins.list[TemplateRecord]:
        """Every template, by name, each at its current revision."""
        return await self._send(calls.templates())

    async def template(self, name: str, revision: int | None = None) -> TemplateRecord:
        """The template at its current revision, or at `revision` while it is kept."""
        return await self._send(calls.template(name, revision))

    async def delete_template(self, name: str) -> None:
        """Delete the template and its revisions; runs made from it keep what they ran."""
        await self._send(calls.delete_template(name))

    async def submit_template(
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
        return await self._send(call)

    # -- schedules ------------------------------------------------------------------------

    async def put_schedule(self, name: str, spec: ScheduleBody) -> ScheduleRecord:
        """Create or replace the schedule `name` (a mapping in the API's camelCase, or a
        `ScheduleSpec`); its status stays."""
        return await self._send(calls.put_schedule(name, spec))

    async def schedules(self) -> builtins.list[ScheduleRecord]:
        return await self._send(calls.schedules())

    async def schedule(self, name: str) -> ScheduleRecord:
        """The schedule with its status: last and next slot, runs going and recent, counts."""
        return await self._send(calls.schedule(name))

    async def delete_schedule(self, name: str) -> None:
        """Delete the schedule; the runs it started stay."""
        await self._send(calls.delete_schedule(name))

    async def pause_schedule(self, name: str) -> ScheduleRecord:
        """No slot fires until `resume_schedule` (slots that pass count as missed)."""
        return await self._send(calls.hold_schedule(name, suspended=True))

    async def resume_schedule(self, name: str) -> ScheduleRecord:
        return await self._send(calls.hold_schedule(name, suspended=False))

    async def backfill(
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
        return await self._send(call)

    async def events(self, run_id: str) -> AsyncGenerator[Event, None]:
        """A `RunRecord` snapshot, then a `RunEvent` per change, until the run ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=calls.STREAM_READ_TIMEOUT)
        try:
            async with aconnect_sse(
                self._http, "GET", calls.events_path(run_id), timeout=timeout
            ) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    calls.checked(source.response)
                async for sse in source.aiter_sse():
                    event = calls.read_event(sse)
                    if event is not None:
                        yield event
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error

    # The same call as Client.wait (the signature); asyncio.timeout does the timing.
    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:  # noqa: ASYNC109
        """Follow the run until it finishes and return it; TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while True:
                async with contextlib.aclosing(self.events(run_id)) as stream:
                    async for event in stream:
                        if calls.finished(event):
                            break
                record = await self.get(run_id)
                if record.status.phase.finished:
                    return record

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise calls.unreachable(self.base_url, error) from error
        return call.read(calls.checked(response))
