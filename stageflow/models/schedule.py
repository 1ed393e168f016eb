"""Schedules: a template (or an inline workflow) started on a clock (docs/schedules.md).

The spec is what a user writes (the `Schedule` resource's spec, or `PUT /schedules/{name}`);
the status is the scheduler's alone, and is what makes a slot fire at most once: the run a
slot starts has an id derived from (schedule, slot), and `lastScheduledTime` is written
only after that run exists.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from stageflow.models.records import WireModel
from stageflow.models.request import Key, Model, WorkflowRequest
from stageflow.models.status import RunPhase, StatusModel, Timestamp
from stageflow.models.template import TemplateName, TemplateRef

# A cron entry: 5 fields, a macro (@hourly, @daily, ...) or `@every 30s` (Argo's and Go
# cron's interval form, aligned to the Unix epoch).
CronText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MAX_SCHEDULE_ENTRIES = 16
MAX_BACKFILL_SLOTS = 1000
# What the status keeps waiting: every slot of the largest backfill, and a clock slot.
MAX_PENDING = MAX_BACKFILL_SLOTS + 1


class OverlapPolicy(enum.StrEnum):
    """What a slot does while a run of the schedule is still going (Temporal's names)."""

    SKIP = "Skip"  # it does not fire, and is counted as skipped
    BUFFER_ONE = "BufferOne"  # it fires when the run ends; at most one waits, later ones skip
    BUFFER_ALL = "BufferAll"  # every one waits, and they fire one after another
    ALLOW_ALL = "AllowAll"  # it fires now, beside the runs going
    CANCEL_OTHER = "CancelOther"  # the runs going are cancelled; it fires once they ended


class ScheduleSpec(Model):
    """A Schedule's spec: when (cron entries in a time zone) and what (a template or a body)."""

    schedule: list[CronText] = Field(
        min_length=1,
        max_length=MAX_SCHEDULE_ENTRIES,
        description="Cron entries (5 fields, @hourly/@daily/@weekly/@monthly/@yearly, or "
        "`@every 90s`); a string is one entry. A slot two entries share fires once.",
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA name.")
    template_ref: TemplateRef | None = Field(
        default=None,
        description="The template each run is made from (its current revision when the slot "
        "fires, unless `revision` is given). Give this or `workflowSpec`.",
    )
    workflow_spec: WorkflowRequest | None = Field(
        default=None, description="An inline workflow body, instead of `templateRef`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Param values (each run also gets `scheduledTime`)."
    )
    labels: dict[Key, Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=dict, max_length=64, description="Added to each run's labels."
    )
    overlap_policy: OverlapPolicy = Field(
        default=OverlapPolicy.SKIP,
        description="What a slot does while a run of the schedule is still going: `Skip`, "
        "`BufferOne`, `BufferAll`, `AllowAll` or `CancelOther`.",
    )
    catchup_window_seconds: int = Field(
        default=3600,
        ge=0,
        le=366 * 24 * 3600,
        description="After downtime, missed slots this recent still fire, in order, under "
        "the overlap policy; older ones are skipped and counted as missed.",
    )
    suspend: bool = Field(default=False, description="No slot fires while set.")
    pause_on_failure: bool = Field(
        default=False, description="A failed run sets `suspend`, with the reason in the status."
    )
    jitter_seconds: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="Each slot fires up to this much later (the same delay on every replica).",
    )
    successful_runs_history_limit: int = Field(
        default=3, ge=0, le=1000, description="Succeeded runs kept; older ones are deleted."
    )
    failed_runs_history_limit: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Failed or cancelled runs kept; older ones are deleted.",
    )

    @field_validator("schedule", mode="before")
    @classmethod
    def _one_entry_as_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _what_to_run(self) -> ScheduleSpec:
        if (self.template_ref is None) == (self.workflow_spec is None):
            raise ValueError("give exactly one of `templateRef` or `workflowSpec`")
        return self


class ScheduledRun(StatusModel):
    run_id: str = Field(description="The run's ID (derived from the schedule's uid and the slot).")
    scheduled_time: Timestamp = Field(description="The slot it was fired for (UTC).")
    phase: RunPhase | None = Field(default=None, description="The run's phase when last seen.")
    backfill: bool | None = Field(default=None, description="Fired by a backfill.")


class PendingSlot(StatusModel):
    """A slot waiting for the runs going to end (a buffered or backfilled one)."""

    scheduled_time: Timestamp = Field(description="The slot (UTC).")
    overlap_policy: OverlapPolicy = Field(
        description="The policy it fires under: the schedule's, or its backfill's."
    )
    backfill: bool | None = Field(default=None, description="Queued by a backfill.")


class ScheduleStatus(StatusModel):
    """Written by the scheduler alone (and by a backfill, which adds `pending` slots)."""

    last_scheduled_time: Timestamp | None = Field(
        default=None, description="The latest clock slot handled: fired, skipped or missed."
    )
    next_scheduled_time: Timestamp | None = Field(
        default=None, description="The next clock slot (UTC)."
    )
    active: list[ScheduledRun] = Field(default_factory=list, description="Its runs still going.")
    recent: list[ScheduledRun] = Field(
        default_factory=list, description="Finished runs still kept, newest first."
    )
    pending: list[PendingSlot] = Field(
        default_factory=list,
        max_length=MAX_PENDING,
        description="Slots waiting to fire (buffered or backfilled), in order.",
    )
    last_run_phase: RunPhase | None = Field(
        default=None, description="How its latest finished run ended."
    )
    fired: int = Field(default=0, description="Slots that started a run.")
    skipped: int = Field(default=0, description="Slots the overlap policy did not fire.")
    missed: int = Field(
        default=0, description="Slots past the catch-up window, or passed while suspended."
    )
    message: str | None = Field(
        default=None, description="Why it paused itself (`pauseOnFailure`): the run and slot."
    )
    schedule_key: str | None = Field(
        default=None,
        description="The entries and time zone the status was written for: when they "
        "change, the schedule goes on from that moment (no catch-up of slots it never had).",
    )


class ScheduleRecord(WireModel):
    """A schedule as the API answers (and the scheduler reads): spec, status, identity."""

    model_config = ConfigDict(populate_by_name=True)

    name: TemplateName = Field(description="The schedule's name (a DNS label).")
    namespace: str | None = Field(
        default=None, description="The Schedule's namespace (kubernetes backend)."
    )
    uid: str = Field(description="Fixed for the schedule's life; run ids derive from it.")
    created_at: Timestamp = Field(description="When the schedule was created (UTC).")
    version: str | None = Field(
        default=None, description="What a status write is conditional on (resourceVersion)."
    )
    spec: ScheduleSpec = Field(description="When it fires and what it runs, as written.")
    status: ScheduleStatus = Field(
        default_factory=ScheduleStatus,
        description="The scheduler's record: last and next slot, runs going and recent, counts.",
    )


class ScheduleList(WireModel):
    items: list[ScheduleRecord] = Field(
        description="Every schedule of the namespace, by name, with its status."
    )


class BackfillRequest(Model):
    """The body of POST /schedules/{name}/backfill: the slots of [start, end)."""

    start: datetime = Field(description="The range's first instant (inclusive), with an offset.")
    end: datetime = Field(description="The range's end (exclusive), with an offset.")
    overlap_policy: OverlapPolicy = Field(
        default=OverlapPolicy.BUFFER_ALL,
        description="BufferAll (default): one run after another; AllowAll: all at once.",
    )
    dry_run: bool = Field(default=False, description="List the slots only: nothing fires.")


class BackfillResult(WireModel):
    slots: list[Timestamp] = Field(description="The slots in the range, in order.")
    queued: int = Field(description="How many were queued to fire (0 on a dry run).")
    dry_run: bool = Field(description="The slots were listed only (`dryRun`).")
