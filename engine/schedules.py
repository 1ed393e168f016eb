"""Schedules: which instants are slots, and what one scheduler round does about them.

Pure functions, no I/O and no clock of their own (every `now` is passed in): the operator
and the API's local backend compute the same slots, run ids and jitter on every replica
and after a failover, and a test pins time exactly. engine/scheduler.py drives `tick`.

What makes a slot fire at most once: the run it starts has an id derived from (schedule
uid, slot) alone (`run_id_for`), the host creates runs idempotently by that id, and the
status that moves `lastScheduledTime` past a slot is written only after its run exists.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from stageflow.engine.plan import SpecError
from stageflow.models.schedule import (
    MAX_BACKFILL_SLOTS,
    MAX_PENDING,
    OverlapPolicy,
    PendingSlot,
    ScheduledRun,
    ScheduleRecord,
    ScheduleSpec,
    ScheduleStatus,
)
from stageflow.models.status import RunPhase, format_timestamp

MACROS: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Never change it: the ids of runs already started derive from it, and a changed namespace
# would make every slot look unfired (uuid5(NAMESPACE_URL, "https://stageflow.dev/schedules")).
NAMESPACE = uuid.UUID("ff12f032-fd52-5511-a121-060b28f3696e")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_EVERY = timedelta(seconds=1)
MAX_EVERY = timedelta(days=366)
# A scheduler wakes a little after a slot, never exactly on it: a catch-up window shorter
# than this (0 included) would count every slot as missed. Temporal has the same floor.
MIN_CATCHUP_WINDOW_SECONDS = 10
# The most clock slots one tick handles (and the most it counts one by one as missed):
# a minutely schedule back from a year of downtime must not stall a round.
MAX_SLOTS_PER_TICK = 10_000
IDLE_SECONDS = 300.0
_MICROSECOND = timedelta(microseconds=1)
_EVERY = re.compile(r"@every\s+(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?", re.IGNORECASE)
_CRON_FIELDS = 5


# --- entries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cron:
    """A 5-field expression (macros already expanded), evaluated in the schedule's zone."""

    expression: str


@dataclass(frozen=True)
class _Every:
    """`@every`: the multiples of `step` since the Unix epoch, the same on every replica."""

    step: timedelta


_Entry = _Cron | _Every


class _EntryError(ValueError):
    """What is wrong with one entry; `check_spec` names the entry around it."""


@lru_cache(maxsize=1024)
def _parse_entry(text: str) -> _Entry:
    """One entry, parsed once per process (each round evaluates every schedule's)."""
    entry = text.strip()
    if entry.lower().startswith("@every"):
        return _Every(_parse_every(entry))
    if entry.startswith("@"):
        expression = MACROS.get(entry.lower())
        if expression is None:
            raise _EntryError(f"unknown macro (known: {', '.join(MACROS)} and @every)")
        return _Cron(expression)
    fields = entry.split()
    if len(fields) != _CRON_FIELDS:
        # cronsim takes a 6th (seconds) field; Kubernetes and Debian cron do not.
        raise _EntryError(
            f"a cron entry has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}"
        )
    try:
        CronSim(entry, EPOCH)
    except CronSimError as error:
        raise _EntryError(str(error)) from None
    return _Cron(" ".join(fields))


def _parse_every(entry: str) -> timedelta:
    """Go's duration syntax, restricted to whole h, m and s (`90s`, `5m`, `1h30m`)."""
    match = _EVERY.fullmatch(entry)
    if match is None or not any(match.groups()):
        raise _EntryError("@every takes a duration of whole h, m and s, like 30s, 5m or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    step = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if not MIN_EVERY <= step <= MAX_EVERY:
        raise _EntryError("an @every interval is at least 1s and at most 366 days")
    return step


_NOT_A_ZONE = frozenset({"localtime", "Factory", "posixrules", "posix", "right"})


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    """The IANA zone; UTC as `datetime.UTC`, which cronsim iterates without conversions."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    if name in _NOT_A_ZONE or name.startswith(("/", ".")):
        # the host's own (`localtime`) would differ between the API and the operator
        raise SpecError(f"Unknown time zone: {name} (give an IANA name, e.g. Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SpecError(f"Unknown time zone: {name}") from None


def _compile(spec: ScheduleSpec) -> tuple[list[_Entry], tzinfo]:
    entries = []
    for index, text in enumerate(spec.schedule):
        try:
            entries.append(_parse_entry(text))
        except _EntryError as error:
            raise SpecError(f"schedule[{index}] {text!r}: {error}") from None
    return entries, _zone(spec.timezone)


def check_spec(spec: ScheduleSpec) -> None:
    """Raise SpecError (an HTTP 400) naming the first bad entry, or an unknown time zone."""
    _compile(spec)


# --- slots ---------------------------------------------------------------------------------


def _offset_required(moment: datetime, what: str) -> datetime:
    """A caller's instant in UTC; a naive one is refused, not guessed (whose local time?)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SpecError(
            f"{what} {moment.isoformat()} has no UTC offset: write it in RFC 3339, "
            f"like 2026-01-01T00:00:00Z"
        )
    return moment.astimezone(UTC)


def _stored(moment: datetime) -> datetime:
    """A timestamp the status or the record holds: written in UTC, even if read naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _entry_slots(entry: _Entry, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """The entry's slots after `after`, ascending, in UTC, without end."""
    if isinstance(entry, _Every):
        moment = EPOCH + ((after - EPOCH) // entry.step + 1) * entry.step
        try:
            while True:
                yield moment
                moment += entry.step
        except OverflowError:  # year 9999
            return
    previous = after
    # cronsim applies Debian cron's DST rules when given an aware time in the zone: a
    # fixed-time job in the skipped hour runs once at its end, in the repeated hour once.
    # It gives up (StopIteration) after 50 years without a match.
    for local in CronSim(entry.expression, after.astimezone(zone)):
        moment = local.astimezone(UTC)
        # Strictly ascending: a wall time in a repeated hour maps to its first instant,
        # which can lie before an `after` inside that hour.
        if moment > previous:
            yield moment
            previous = moment


def _merged(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    entries, zone = _compile(spec)
    return _unique(heapq.merge(*(_entry_slots(entry, zone, after) for entry in entries)))


def _unique(ascending: Iterator[datetime]) -> Iterator[datetime]:
    """A slot two entries share is one slot (it fires once)."""
    previous = None
    for moment in ascending:
        if moment != previous:
            yield moment
            previous = moment


def slots(spec: ScheduleSpec, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every slot s with after < s <= until, ascending, in UTC, computed lazily (a minutely
    schedule over a year is never a list). The spec is checked now, not at the first item."""
    after = _offset_required(after, "after")
    until = _offset_required(until, "until")
    return itertools.takewhile(lambda moment: moment <= until, _merged(spec, after))


def next_slot(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first slot after `after` (None: no entry matches within cronsim's 50 years)."""
    return next(_merged(spec, _offset_required(after, "after")), None)


def jitter(uid: str, slot: datetime, seconds: int) -> timedelta:
    """How long after `slot` it fires: in [0, seconds), from a hash of (schedule, slot), so
    every replica and a successor after failover wait the same, and schedules sharing a
    slot spread out."""
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{uid}/{format_timestamp(slot)}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (seconds * 1000))


def run_id_for(uid: str, slot: datetime) -> str:
    """The id of the run a slot starts. A backfilled slot and a clock slot at the same
    instant are the same run: a slot fires at most once, whatever asked for it."""
    return str(uuid.uuid5(NAMESPACE, f"{uid}/{format_timestamp(slot)}"))


def backfill_slots(spec: ScheduleSpec, start: datetime, end: datetime) -> list[datetime]:
    """The slots s with start <= s < end, at most MAX_BACKFILL_SLOTS (SpecError past it,
    found without listing a larger range)."""
    start = _offset_required(start, "start")
    end = _offset_required(end, "end")
    if end <= start:
        raise SpecError(
            f"backfill range is reversed: end {format_timestamp(end)} is not after "
            f"start {format_timestamp(start)}"
        )
    if start < EPOCH or end.year > 9000:
        raise SpecError("a backfill lies between 1970 and the year 9000")
    found = list(
        itertools.islice(
            slots(spec, start - _MICROSECOND, end - _MICROSECOND), MAX_BACKFILL_SLOTS + 1
        )
    )
    if len(found) > MAX_BACKFILL_SLOTS:
        raise SpecError(
            f"a backfill covers at most {MAX_BACKFILL_SLOTS} slots (MAX_BACKFILL_SLOTS); "
            f"this range has more"
        )
    return found


def queue_backfill(
    status: ScheduleStatus, uid: str, moments: Sequence[datetime], policy: OverlapPolicy
) -> ScheduleStatus:
    """The status with `moments` waiting as backfilled slots, each under `policy`; a slot
    already waiting, going or kept in `recent` is not queued again. SpecError when the
    waiting list would pass MAX_PENDING (nothing is queued then)."""
    taken = {run.run_id for run in (*status.active, *status.recent)}
    taken.update(run_id_for(uid, slot.scheduled_time) for slot in status.pending)
    added: list[PendingSlot] = []
    for moment in moments:
        run_id = run_id_for(uid, moment)
        if run_id not in taken:
            taken.add(run_id)
            added.append(PendingSlot(scheduled_time=moment, overlap_policy=policy, backfill=True))
    if len(status.pending) + len(added) > MAX_PENDING:
        raise SpecError(
            f"a schedule holds at most {MAX_PENDING} waiting slots: {len(status.pending)} "
            f"wait and this backfill adds {len(added)}"
        )
    return status.model_copy(update={"pending": [*status.pending, *added]})


# --- one round -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """A run to start now, with the id its slot gives it."""

    run_id: str
    scheduled_time: datetime
    backfill: bool = False


@dataclass(frozen=True)
class Tick:
    """What the driver does after one round for one schedule, in this order: cancel, start
    each firing, pause, write `status` (conditionally), delete."""

    fire: list[Firing]
    cancel: list[str]
    delete: list[str]
    pause_reason: str | None
    status: ScheduleStatus
    wake_at: datetime


@dataclass
class _Settled:
    """Step a and b: the runs still going, the finished ones kept, the ones to delete."""

    going: list[ScheduledRun]
    recent: list[ScheduledRun]
    delete: list[str]
    last_run_phase: RunPhase | None
    message: str | None
    pause_reason: str | None


@dataclass
class _Due:
    """Step c: the clock slots this tick handled."""

    candidates: list[PendingSlot] = field(default_factory=list)
    missed: int = 0
    last: datetime | None = None
    more: bool = False  # MAX_SLOTS_PER_TICK was reached: another round follows at once


@dataclass
class _Dispatched:
    """Step d: what fires, what is cancelled, what waits."""

    fire: list[Firing] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    waiting: list[PendingSlot] = field(default_factory=list)
    skipped: int = 0


def tick(
    record: ScheduleRecord,
    now: datetime,
    phases: Mapping[str, RunPhase | None],
    *,
    poll_seconds: float,
    idle_seconds: float = IDLE_SECONDS,
) -> Tick:
    """One round for one schedule: what ended, which slots are due, what fires.

    `phases` holds the current phase of the runs in `status.active` (None: the run no longer
    exists; an id left out: unknown this round, the run stays as it was). The input record
    is not changed. Deterministic: the same input gives the same output, so a round whose
    status write failed is simply done again (the host starts runs idempotently by id)."""
    now = _offset_required(now, "now")
    spec, status = record.spec, record.status
    settled = _settle(status, spec, phases)
    stopped = spec.suspend or settled.pause_reason is not None
    when = when_key(spec)
    if status.schedule_key is not None and status.schedule_key != when:
        # the entries or the zone changed: the new ones start from now, with nothing to
        # catch up (their past slots never were)
        status = status.model_copy(update={"last_scheduled_time": now})
    origin = _stored(status.last_scheduled_time or record.created_at)
    due = _due(record, now, origin, stopped=stopped)
    if stopped:  # nothing fires, and the slots already waiting keep waiting
        dispatched = _Dispatched(waiting=list(status.pending))
    else:
        known = {run.run_id for run in (*status.active, *status.recent)}
        queue = [*status.pending, *due.candidates]
        dispatched = _dispatch(queue, settled.going, known, record.uid)
    active = settled.going + [
        ScheduledRun(
            run_id=firing.run_id,
            scheduled_time=firing.scheduled_time,
            phase=RunPhase.PENDING,
            backfill=firing.backfill or None,
        )
        for firing in dispatched.fire
    ]
    last = due.last if due.last is not None else status.last_scheduled_time
    upcoming = next_slot(spec, due.last or origin)
    new_status = status.model_copy(
        update={
            "last_scheduled_time": last,
            "next_scheduled_time": upcoming,
            "active": active,
            "recent": settled.recent,
            "pending": dispatched.waiting,
            "last_run_phase": settled.last_run_phase,
            "fired": status.fired + len(dispatched.fire),
            "skipped": status.skipped + dispatched.skipped,
            "missed": status.missed + due.missed,
            "message": settled.message,
            "schedule_key": when,
        }
    )
    # Runs going are watched even while stopped (they end, and move to `recent`); slots
    # waiting only matter while something can fire.
    busy = bool(active or (dispatched.waiting and not stopped))
    wake_at = _wake_at(record.uid, spec, now, upcoming, busy, due.more, poll_seconds, idle_seconds)
    return Tick(
        fire=dispatched.fire,
        cancel=dispatched.cancel,
        delete=settled.delete,
        pause_reason=settled.pause_reason,
        status=new_status,
        wake_at=wake_at,
    )


def when_key(spec: ScheduleSpec) -> str:
    """What says when a schedule fires: its entries and zone (a change restarts it)."""
    return f"{spec.timezone}|" + "|".join(spec.schedule)


def _settle(
    status: ScheduleStatus, spec: ScheduleSpec, phases: Mapping[str, RunPhase | None]
) -> _Settled:
    """Runs that ended move to `recent` (newest slot first); a run that no longer exists is
    dropped (someone deleted it). A failure pauses the schedule under pauseOnFailure."""
    going: list[ScheduledRun] = []
    ended: list[ScheduledRun] = []
    for run in status.active:
        if run.run_id not in phases:
            going.append(run)
            continue
        phase = phases[run.run_id]
        if phase is None:
            continue
        (ended if phase.finished else going).append(run.model_copy(update={"phase": phase}))
    ended.sort(key=lambda run: _stored(run.scheduled_time))
    settled = _Settled(
        going=going,
        recent=[],
        delete=[],
        last_run_phase=ended[-1].phase if ended else status.last_run_phase,
        message=status.message,
        pause_reason=None,
    )
    failed = next((run for run in ended if run.phase is RunPhase.FAILED), None)
    if failed is not None and spec.pause_on_failure:
        # Also when already suspended: the round that paused may have lost its status
        # write (a spec change moves the version), and the next one writes the reason.
        settled.message = (
            f"run {failed.run_id} (slot {format_timestamp(failed.scheduled_time)}) failed; "
            f"paused by pauseOnFailure"
        )
        if not spec.suspend:
            settled.pause_reason = settled.message
    settled.recent, settled.delete = _trim_history([*ended, *status.recent], spec)
    return settled


def _trim_history(
    finished: list[ScheduledRun], spec: ScheduleSpec
) -> tuple[list[ScheduledRun], list[str]]:
    """The newest Succeeded runs and the newest Failed or Cancelled ones within their
    limits stay; the older ones are deleted, as a CronJob's history limits do."""
    newest_first = sorted(finished, key=lambda run: _stored(run.scheduled_time), reverse=True)
    kept: list[ScheduledRun] = []
    delete: list[str] = []
    seen: set[str] = set()
    counts = {True: 0, False: 0}
    for run in newest_first:
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        succeeded = run.phase is RunPhase.SUCCEEDED
        limit = spec.successful_runs_history_limit if succeeded else spec.failed_runs_history_limit
        counts[succeeded] += 1
        if counts[succeeded] <= limit:
            kept.append(run)
        else:
            delete.append(run.run_id)
    return kept, delete


def _due(record: ScheduleRecord, now: datetime, origin: datetime, *, stopped: bool) -> _Due:
    """The clock slots after `origin` that are due (slot + jitter <= now), in order, up to
    the first one not due yet. Missed: every one while stopped (suspended or pausing), else
    those later than the catch-up window; the others are candidates to fire."""
    spec, uid = record.spec, record.uid
    window = timedelta(seconds=max(spec.catchup_window_seconds, MIN_CATCHUP_WINDOW_SECONDS))
    most_jitter = timedelta(seconds=spec.jitter_seconds)
    due = _Due()
    last = origin
    # Slots before `cut` are surely due and surely missed whatever their jitter: count them
    # without handling each (a year of downtime), one by one up to MAX_SLOTS_PER_TICK.
    cut = now - most_jitter - (timedelta(0) if stopped else window)
    if cut > last:
        counted = list(itertools.islice(slots(spec, last, cut - _MICROSECOND), MAX_SLOTS_PER_TICK))
        due.missed = len(counted)
        if len(counted) == MAX_SLOTS_PER_TICK:
            # Approximation: more than MAX_SLOTS_PER_TICK slots were missed in a row and
            # `missed` grows by exactly that; the rest are not counted. `last` moves to just
            # before `cut`, which is not a slot, but all that follows only asks what is after.
            last = due.last = cut - _MICROSECOND
        elif counted:
            last = due.last = counted[-1]
    for handled, slot in enumerate(slots(spec, last, now)):
        delay = jitter(uid, slot, spec.jitter_seconds)
        if slot + delay > now:
            break
        if handled == MAX_SLOTS_PER_TICK:
            due.more = True
            break
        due.last = slot
        if stopped or slot + delay < now - window:
            due.missed += 1
        else:
            due.candidates.append(
                PendingSlot(scheduled_time=slot, overlap_policy=spec.overlap_policy)
            )
    return due


def _dispatch(
    queue: list[PendingSlot], going_runs: list[ScheduledRun], known: set[str], uid: str
) -> _Dispatched:
    """The waiting slots, then the new ones, in order, each under its overlap policy.

    `going` holds the runs still going and those fired in this round. Only runs going
    before this round are cancelled (a run fired now does not exist yet); a waiting
    CancelOther slot asks again each round until they ended (cancelling is idempotent, and
    a request lost to a failover is made again). BufferOne and CancelOther keep one waiting
    clock slot; backfilled slots were each asked for, so each waits."""
    going_before = [run.run_id for run in going_runs]
    going = set(going_before)
    known = set(known)
    out = _Dispatched()
    for slot in queue:
        run_id = run_id_for(uid, slot.scheduled_time)
        if run_id in known:  # fired already: a slot fires at most once
            continue
        policy = slot.overlap_policy
        if not going or policy is OverlapPolicy.ALLOW_ALL:
            out.fire.append(Firing(run_id, _stored(slot.scheduled_time), bool(slot.backfill)))
            known.add(run_id)
            going.add(run_id)
            continue
        if policy is OverlapPolicy.SKIP:
            out.skipped += 1
            continue
        if policy is OverlapPolicy.CANCEL_OTHER:
            out.cancel.extend(other for other in going_before if other not in out.cancel)
        if policy in (OverlapPolicy.BUFFER_ONE, OverlapPolicy.CANCEL_OTHER) and not slot.backfill:
            older = next(
                (w for w in out.waiting if w.overlap_policy is policy and not w.backfill), None
            )
            if older is not None:
                out.skipped += 1
                if policy is OverlapPolicy.BUFFER_ONE:
                    continue  # the one waiting stays; this newer one is dropped
                out.waiting.remove(older)  # the newest CancelOther slot replaces it
        if len(out.waiting) >= MAX_PENDING:
            out.skipped += 1
            continue
        out.waiting.append(slot)
    return out


def _wake_at(
    uid: str,
    spec: ScheduleSpec,
    now: datetime,
    upcoming: datetime | None,
    busy: bool,
    more: bool,
    poll_seconds: float,
    idle_seconds: float,
) -> datetime:
    """When this schedule needs the next round: its next slot (with that slot's jitter), or
    sooner to watch runs going and slots waiting; at once when slots were left over."""
    if more:
        return now
    wake = now + timedelta(seconds=poll_seconds if busy else idle_seconds)
    if upcoming is not None:
        wake = min(wake, upcoming + jitter(uid, upcoming, spec.jitter_seconds))
    return max(wake, now)
