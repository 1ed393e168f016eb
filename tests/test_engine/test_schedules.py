"""Schedules' pure side (engine/schedules.py): which instants are slots, in which zone,
under DST; the checks a spec gets; backfill ranges; and what one `tick` decides, on fixed
dates and a clock passed in, so every expectation is exact."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stageflow.engine.plan import SpecError
from stageflow.engine.schedules import (
    MACROS,
    MAX_SLOTS_PER_TICK,
    Firing,
    Tick,
    backfill_slots,
    check_spec,
    jitter,
    next_slot,
    queue_backfill,
    run_id_for,
    slots,
    tick,
)
from stageflow.models.schedule import (
    MAX_PENDING,
    OverlapPolicy,
    PendingSlot,
    ScheduledRun,
    ScheduleRecord,
    ScheduleSpec,
    ScheduleStatus,
)
from stageflow.models.status import RunPhase

UID = "8e3f0d6a-2b1c-4f5e-9a7d-0c6b5e4d3f21"
START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def spec(*entries: str, **fields: Any) -> ScheduleSpec:
    return ScheduleSpec(schedule=list(entries), template_ref={"name": "nightly"}, **fields)


def record(schedule: ScheduleSpec, status: ScheduleStatus | None = None) -> ScheduleRecord:
    return ScheduleRecord(
        name="nightly",
        uid=UID,
        created_at=START,
        spec=schedule,
        status=status or ScheduleStatus(),
    )


def run(
    at: datetime, phase: RunPhase = RunPhase.RUNNING, run_id: str | None = None
) -> ScheduledRun:
    return ScheduledRun(run_id=run_id or run_id_for(UID, at), scheduled_time=at, phase=phase)


def ticked(
    schedule: ScheduleSpec,
    status: ScheduleStatus,
    now: datetime,
    phases: Mapping[str, RunPhase | None] | None = None,
) -> Tick:
    return tick(record(schedule, status), now, phases or {}, poll_seconds=5)


def fired_times(result: Tick) -> list[datetime]:
    return [firing.scheduled_time for firing in result.fire]


# --- slots ---------------------------------------------------------------------------------


def test_a_cron_entry_gives_the_slots_after_and_up_to_until() -> None:
    found = list(slots(spec("*/15 * * * *"), START, START + HOUR))
    assert found == [START + timedelta(minutes=m) for m in (15, 30, 45, 60)]
    assert all(slot.tzinfo is UTC for slot in found)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
        ("@annually", datetime(2027, 1, 1, tzinfo=UTC)),
        ("@monthly", datetime(2026, 2, 1, tzinfo=UTC)),
        ("@weekly", datetime(2026, 1, 4, tzinfo=UTC)),  # Sunday
        ("@daily", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@midnight", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@hourly", START + HOUR),
        ("@Daily", datetime(2026, 1, 2, tzinfo=UTC)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    assert next_slot(spec(macro), START) == expected


def test_the_macro_table_is_cron() -> None:
    assert MACROS["@yearly"] == MACROS["@annually"] == "0 0 1 1 *"
    assert MACROS["@weekly"] == "0 0 * * 0"
    assert MACROS["@hourly"] == "0 * * * *"


def test_every_is_aligned_to_the_unix_epoch() -> None:
    """Every replica computes the same slots, whenever it started."""
    found = list(slots(spec("@every 1h30m"), START, START + timedelta(days=1)))
    assert len(found) == 16
    assert all(int(slot.timestamp()) % 5400 == 0 for slot in found)
    assert {b - a for a, b in pairwise(found)} == {timedelta(minutes=90)}
    after = START + timedelta(seconds=7)
    assert list(slots(spec("@every 30s"), after, after + timedelta(minutes=1))) == [
        START + timedelta(seconds=30),
        START + timedelta(seconds=60),
    ]


def test_a_slot_two_entries_share_is_one_slot() -> None:
    found = list(slots(spec("0 */3 * * *", "@every 1h30m"), START, START + 9 * HOUR))
    expected = [START + timedelta(minutes=90 * k) for k in range(1, 7)]
    assert found == expected  # 03:00, 06:00 and 09:00 once each


def test_cron_entries_are_evaluated_in_the_time_zone() -> None:
    new_york = spec("0 9 * * *", timezone="America/New_York")
    assert next_slot(new_york, START) == datetime(2026, 1, 1, 14, tzinfo=UTC)  # EST
    assert next_slot(new_york, datetime(2026, 7, 1, tzinfo=UTC)) == datetime(
        2026, 7, 1, 13, tzinfo=UTC
    )  # EDT


def test_slots_are_lazy() -> None:
    """A minutely schedule over a century: only what is taken is computed."""
    found = slots(spec("* * * * *"), START, START + timedelta(days=36500))
    assert next(found) == START + timedelta(minutes=1)


def day_in_berlin(day: str) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight (23 or 25 hours on a DST day)."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=BERLIN)
    return midnight, midnight + timedelta(days=1)  # wall-clock arithmetic


def berlin_slots(entry: str, day: str) -> list[datetime]:
    start, end = day_in_berlin(day)
    return list(slots(spec(entry, timezone="Europe/Berlin"), start, end))


def test_a_fixed_time_in_the_skipped_hour_fires_once_at_its_end() -> None:
    assert berlin_slots("30 2 * * *", "2026-03-29") == [datetime(2026, 3, 29, 1, tzinfo=UTC)]
    only = berlin_slots("30 2 * * *", "2026-03-29")[0].astimezone(BERLIN)
    assert (only.hour, only.minute) == (3, 0)


def test_a_fixed_time_in_the_repeated_hour_fires_once() -> None:
    assert berlin_slots("30 2 * * *", "2026-10-25") == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first one
    ]


def test_an_hourly_entry_follows_the_length_of_the_day() -> None:
    assert len(berlin_slots("0 * * * *", "2026-03-29")) == 23
    assert len(berlin_slots("0 * * * *", "2026-10-25")) == 25
    assert len(berlin_slots("0 * * * *", "2026-06-01")) == 24


# --- checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "timezone", "message"),
    [
        (["@hourly", "0 0 * * * *"], "UTC", "schedule[1] '0 0 * * * *': a cron entry has 5"),
        (["@daily", "61 * * * *"], "UTC", "schedule[1] '61 * * * *': Bad minute"),
        (["* * * 13 *"], "UTC", "schedule[0] '* * * 13 *': Bad month"),
        (["@sometimes"], "UTC", "schedule[0] '@sometimes': unknown macro"),
        (["@every 0s"], "UTC", "schedule[0] '@every 0s': an @every interval is at least 1s"),
        (["@every 367d"], "UTC", "schedule[0] '@every 367d': @every takes a duration"),
        (["@every 9000h"], "UTC", "schedule[0] '@every 9000h': an @every interval is at"),
        (["@every"], "UTC", "schedule[0] '@every': @every takes a duration"),
        (["@hourly"], "Mars/Base", "Unknown time zone: Mars/Base"),
        (["@hourly"], "Europe", "Unknown time zone: Europe"),
        (["@hourly"], "../etc/passwd", "Unknown time zone: ../etc/passwd"),
    ],
)
def test_bad_specs_name_the_problem(entries: list[str], timezone: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        check_spec(spec(*entries, timezone=timezone))
    assert str(raised.value).startswith(message)


def test_good_specs_pass() -> None:
    check_spec(spec("*/5 9-17 * * MON-FRI", "@every 90s", "@weekly", timezone="Asia/Tokyo"))


def test_slots_check_the_spec_before_the_first_slot() -> None:
    with pytest.raises(SpecError, match="Bad minute"):
        slots(spec("61 * * * *"), START, START + HOUR)


# --- jitter and run ids --------------------------------------------------------------------


def test_jitter_is_deterministic_and_within_bounds() -> None:
    moments = [START + k * HOUR for k in range(500)]
    delays = [jitter(UID, moment, 600) for moment in moments]
    assert delays == [jitter(UID, moment, 600) for moment in moments]
    assert all(timedelta(0) <= delay < timedelta(seconds=600) for delay in delays)
    assert len(set(delays)) > 400  # spread out, not one delay for all
    assert jitter(UID, START, 0) == timedelta(0)
    assert jitter(UID, START, 600) != jitter("another-schedule", START, 600)
    # The same instant written in another offset is the same slot.
    assert jitter(UID, START.astimezone(BERLIN), 600) == jitter(UID, START, 600)


def test_run_ids_are_canonical_deterministic_uuids() -> None:
    slot = START + HOUR
    run_id = run_id_for(UID, slot)
    assert run_id == str(uuid.UUID(run_id))
    assert uuid.UUID(run_id).version == 5
    # Pinned: a changed derivation would make every slot already fired fire again.
    assert run_id == "05baff71-e4f0-561e-9129-4267505afa20"
    assert run_id_for(UID, slot.astimezone(BERLIN)) == run_id
    assert run_id_for(UID, slot + timedelta(seconds=1)) != run_id
    assert run_id_for("another-schedule", slot) != run_id


# --- backfill ------------------------------------------------------------------------------


def test_a_backfill_is_the_slots_of_start_inclusive_to_end_exclusive() -> None:
    found = backfill_slots(spec("@hourly"), START, START + 3 * HOUR)
    assert found == [START, START + HOUR, START + 2 * HOUR]


def test_a_reversed_backfill_is_refused() -> None:
    with pytest.raises(SpecError, match="backfill range is reversed: end 2026-01-01T00:00:00"):
        backfill_slots(spec("@hourly"), START + HOUR, START)
    with pytest.raises(SpecError, match="reversed"):
        backfill_slots(spec("@hourly"), START, START)


def test_a_backfill_covers_at_most_1000_slots() -> None:
    with pytest.raises(SpecError, match=r"at most 1000 slots \(MAX_BACKFILL_SLOTS\)"):
        backfill_slots(spec("* * * * *"), START, START + timedelta(days=1))  # 1440
    assert len(backfill_slots(spec("* * * * *"), START, START + timedelta(minutes=1000))) == 1000


def test_a_backfill_needs_offsets() -> None:
    with pytest.raises(SpecError, match="has no UTC offset"):
        backfill_slots(spec("@hourly"), datetime(2026, 1, 1), START + HOUR)


def test_a_backfill_queues_each_slot_once() -> None:
    status = ScheduleStatus(
        active=[run(START)],
        recent=[run(START + HOUR, RunPhase.SUCCEEDED)],
        pending=[
            PendingSlot(scheduled_time=START + 2 * HOUR, overlap_policy=OverlapPolicy.BUFFER_ONE)
        ],
    )
    moments = [START + k * HOUR for k in range(5)]
    queued = queue_backfill(status, UID, [*moments, moments[4]], OverlapPolicy.BUFFER_ALL)
    assert [slot.scheduled_time for slot in queued.pending] == moments[2:]
    assert [slot.backfill for slot in queued.pending] == [None, True, True]
    assert status.pending[0].scheduled_time == moments[2]  # the input is left alone
    assert len(status.pending) == 1


def test_a_backfill_past_the_waiting_limit_is_refused() -> None:
    moments = [START + k * HOUR for k in range(MAX_PENDING + 1)]
    with pytest.raises(SpecError, match=f"at most {MAX_PENDING} waiting slots"):
        queue_backfill(ScheduleStatus(), UID, moments, OverlapPolicy.BUFFER_ALL)


# --- tick ----------------------------------------------------------------------------------


def test_a_due_slot_fires_once_and_the_status_says_so() -> None:
    before = ScheduleStatus()
    given = record(spec("@hourly"), before)
    dumped = given.model_dump()
    result = tick(given, START + HOUR, {}, poll_seconds=5)
    assert result.fire == [Firing(run_id_for(UID, START + HOUR), START + HOUR, False)]
    assert [(r.run_id, r.phase) for r in result.status.active] == [
        (run_id_for(UID, START + HOUR), RunPhase.PENDING)
    ]
    assert result.status.last_scheduled_time == START + HOUR
    assert result.status.next_scheduled_time == START + 2 * HOUR
    assert result.status.fired == 1
    assert result.wake_at == START + HOUR + timedelta(seconds=5)  # a run is going: poll
    assert given.model_dump() == dumped  # the input is never changed


def test_nothing_is_due_before_the_slot() -> None:
    now = START + timedelta(minutes=59)
    result = ticked(spec("@hourly"), ScheduleStatus(), now)
    assert result.fire == []
    assert result.status.last_scheduled_time is None
    assert result.wake_at == START + HOUR


def test_an_idle_schedule_wakes_at_its_next_slot_or_after_the_idle_time() -> None:
    result = ticked(spec("@daily"), ScheduleStatus(), START + timedelta(minutes=1))
    assert result.wake_at == START + timedelta(minutes=6)  # 300 s, sooner than tomorrow
    busy = ScheduleStatus(last_scheduled_time=START, active=[run(START)])
    result = ticked(spec("@daily"), busy, START + timedelta(minutes=1), {})
    assert result.wake_at == START + timedelta(minutes=1, seconds=5)


def going(policy: OverlapPolicy, **fields: Any) -> tuple[ScheduleSpec, ScheduleStatus]:
    """An hourly schedule whose run of START is still going."""
    schedule = spec("@hourly", overlap_policy=policy, **fields)
    return schedule, ScheduleStatus(last_scheduled_time=START, active=[run(START)])


RUNNING = {run_id_for(UID, START): RunPhase.RUNNING}
ENDED = {run_id_for(UID, START): RunPhase.SUCCEEDED}


def test_skip_drops_a_slot_while_a_run_is_going() -> None:
    schedule, status = going(OverlapPolicy.SKIP)
    result = ticked(schedule, status, START + HOUR, RUNNING)
    assert result.fire == []
    assert result.status.skipped == 1
    assert result.status.pending == []
    assert result.status.last_scheduled_time == START + HOUR


def test_buffer_one_keeps_one_slot_waiting_and_fires_it_once_the_run_ended() -> None:
    schedule, status = going(OverlapPolicy.BUFFER_ONE)
    first = ticked(schedule, status, START + HOUR, RUNNING)
    second = ticked(schedule, first.status, START + 2 * HOUR, RUNNING)
    assert first.fire == second.fire == []
    assert [slot.scheduled_time for slot in second.status.pending] == [START + HOUR]
    assert second.status.skipped == 1  # the newer one
    third = ticked(schedule, second.status, START + 2 * HOUR + timedelta(minutes=1), ENDED)
    assert fired_times(third) == [START + HOUR]
    assert third.status.pending == []


def test_buffer_all_fires_the_waiting_slots_one_after_another() -> None:
    schedule, status = going(OverlapPolicy.BUFFER_ALL)
    first = ticked(schedule, status, START + HOUR, RUNNING)
    second = ticked(schedule, first.status, START + 2 * HOUR, RUNNING)
    assert [slot.scheduled_time for slot in second.status.pending] == [
        START + HOUR,
        START + 2 * HOUR,
    ]
    third = ticked(schedule, second.status, START + 2 * HOUR, ENDED)
    assert fired_times(third) == [START + HOUR]
    assert [slot.scheduled_time for slot in third.status.pending] == [START + 2 * HOUR]
    fourth = ticked(
        schedule, third.status, START + 2 * HOUR, {run_id_for(UID, START + HOUR): RunPhase.FAILED}
    )
    assert fired_times(fourth) == [START + 2 * HOUR]
    assert fourth.status.skipped == 0


def test_allow_all_fires_beside_the_run_going() -> None:
    schedule, status = going(OverlapPolicy.ALLOW_ALL)
    result = ticked(schedule, status, START + HOUR, RUNNING)
    assert fired_times(result) == [START + HOUR]
    assert len(result.status.active) == 2


def test_cancel_other_cancels_the_run_going_then_fires() -> None:
    schedule, status = going(OverlapPolicy.CANCEL_OTHER)
    first = ticked(schedule, status, START + HOUR, RUNNING)
    assert first.fire == []
    assert first.cancel == [run_id_for(UID, START)]
    assert [slot.scheduled_time for slot in first.status.pending] == [START + HOUR]
    # Still going on the next round: asked again (a request may have been lost).
    again = ticked(schedule, first.status, START + HOUR + timedelta(seconds=5), RUNNING)
    assert again.cancel == [run_id_for(UID, START)]
    assert again.fire == []
    cancelled = {run_id_for(UID, START): RunPhase.CANCELLED}
    last = ticked(schedule, again.status, START + HOUR + timedelta(seconds=10), cancelled)
    assert fired_times(last) == [START + HOUR]
    assert last.cancel == []
    assert last.status.last_run_phase is RunPhase.CANCELLED


def test_cancel_other_keeps_the_newest_slot_waiting() -> None:
    schedule, status = going(OverlapPolicy.CANCEL_OTHER)
    first = ticked(schedule, status, START + HOUR, RUNNING)
    second = ticked(schedule, first.status, START + 2 * HOUR, RUNNING)
    assert [slot.scheduled_time for slot in second.status.pending] == [START + 2 * HOUR]
    assert second.status.skipped == 1


def catch_up(policy: OverlapPolicy) -> Tick:
    """Hourly, the last slot handled at 07:00, back at 12:30 with a 3-hour window."""
    schedule = spec("@hourly", overlap_policy=policy, catchup_window_seconds=3 * 3600)
    status = ScheduleStatus(last_scheduled_time=START + 7 * HOUR)
    return ticked(schedule, status, START + 12.5 * HOUR)


def test_after_downtime_skip_fires_the_first_slot_of_the_window() -> None:
    result = catch_up(OverlapPolicy.SKIP)
    assert result.status.missed == 2  # 08:00 and 09:00, older than 09:30
    assert fired_times(result) == [START + 10 * HOUR]
    assert result.status.skipped == 2  # 11:00 and 12:00: the 10:00 run is going
    assert result.status.last_scheduled_time == START + 12 * HOUR


def test_after_downtime_allow_all_fires_the_window_in_order() -> None:
    result = catch_up(OverlapPolicy.ALLOW_ALL)
    assert result.status.missed == 2
    assert fired_times(result) == [START + 10 * HOUR, START + 11 * HOUR, START + 12 * HOUR]
    assert result.status.fired == 3


def test_a_slot_just_passed_fires_with_a_zero_window() -> None:
    """The scheduler wakes a little after a slot: a window of 0 still has a floor."""
    schedule = spec("@hourly", catchup_window_seconds=0)
    result = ticked(schedule, ScheduleStatus(), START + HOUR + timedelta(seconds=2))
    assert fired_times(result) == [START + HOUR]
    late = ticked(schedule, ScheduleStatus(), START + HOUR + timedelta(minutes=1))
    assert late.fire == []
    assert late.status.missed == 1


def test_a_suspended_schedule_counts_missed_slots_and_fires_nothing() -> None:
    schedule = spec("@hourly", suspend=True, overlap_policy=OverlapPolicy.BUFFER_ALL)
    waiting = PendingSlot(scheduled_time=START - HOUR, overlap_policy=OverlapPolicy.BUFFER_ALL)
    status = ScheduleStatus(last_scheduled_time=START, pending=[waiting])
    result = ticked(schedule, status, START + 3 * HOUR)
    assert result.fire == []
    assert result.status.missed == 3
    assert result.status.last_scheduled_time == START + 3 * HOUR
    assert result.status.pending == [waiting]
    assert result.status.next_scheduled_time == START + 4 * HOUR


def test_a_failed_run_pauses_a_schedule_with_pause_on_failure() -> None:
    schedule, status = going(OverlapPolicy.ALLOW_ALL, pause_on_failure=True)
    failed = {run_id_for(UID, START): RunPhase.FAILED}
    result = ticked(schedule, status, START + HOUR, failed)
    reason = (
        f"run {run_id_for(UID, START)} (slot 2026-01-01T00:00:00.000000Z) failed; "
        f"paused by pauseOnFailure"
    )
    assert result.pause_reason == reason
    assert result.status.message == reason
    assert result.fire == []  # the slot due in the same round does not fire
    assert result.status.missed == 1
    assert result.status.active == []
    assert [(r.run_id, r.phase) for r in result.status.recent] == [
        (run_id_for(UID, START), RunPhase.FAILED)
    ]
    assert result.status.last_run_phase is RunPhase.FAILED
    # Suspended already (the pause happened, its status write did not): no pause again,
    # the reason is still written.
    suspended = schedule.model_copy(update={"suspend": True})
    again = ticked(suspended, status, START + HOUR, failed)
    assert again.pause_reason is None
    assert again.status.message == reason


def test_a_failed_run_without_pause_on_failure_changes_nothing_else() -> None:
    schedule, status = going(OverlapPolicy.SKIP)
    result = ticked(schedule, status, START + HOUR, {run_id_for(UID, START): RunPhase.FAILED})
    assert result.pause_reason is None
    assert fired_times(result) == [START + HOUR]


def test_a_run_that_no_longer_exists_is_dropped() -> None:
    schedule, status = going(OverlapPolicy.SKIP)
    result = ticked(schedule, status, START + HOUR, {run_id_for(UID, START): None})
    assert result.status.recent == []
    assert fired_times(result) == [START + HOUR]


def test_history_limits_delete_the_older_finished_runs() -> None:
    schedule = spec("@hourly", successful_runs_history_limit=2, failed_runs_history_limit=1)
    recent = [
        run(START - 2 * HOUR, RunPhase.SUCCEEDED),
        run(START - 3 * HOUR, RunPhase.FAILED),
        run(START - 4 * HOUR, RunPhase.SUCCEEDED),
        run(START - 5 * HOUR, RunPhase.CANCELLED),
    ]
    status = ScheduleStatus(last_scheduled_time=START, active=[run(START)], recent=recent)
    result = ticked(schedule, status, START + timedelta(minutes=1), ENDED)
    assert [r.scheduled_time for r in result.status.recent] == [
        START,
        START - 2 * HOUR,
        START - 3 * HOUR,
    ]
    assert result.delete == [run_id_for(UID, START - 4 * HOUR), run_id_for(UID, START - 5 * HOUR)]


def test_a_slot_already_fired_never_fires_again() -> None:
    """The status write of the round that fired it was lost: the run is known anyway."""
    schedule = spec("@hourly", overlap_policy=OverlapPolicy.ALLOW_ALL)
    status = ScheduleStatus(last_scheduled_time=START)
    first = ticked(schedule, status, START + HOUR)
    assert fired_times(first) == [START + HOUR]
    fired = run(START + HOUR)
    for known in (
        status.model_copy(update={"active": [fired]}),
        status.model_copy(
            update={"recent": [fired.model_copy(update={"phase": RunPhase.SUCCEEDED})]}
        ),
    ):
        assert ticked(schedule, known, START + HOUR, {fired.run_id: RunPhase.RUNNING}).fire == []
    # A backfilled slot and the clock slot at the same instant are one run.
    backfilled = queue_backfill(status, UID, [START + HOUR], OverlapPolicy.ALLOW_ALL)
    both = ticked(schedule, backfilled, START + HOUR)
    assert both.fire == [Firing(run_id_for(UID, START + HOUR), START + HOUR, True)]


def test_a_backfill_waits_its_turn_and_fires_one_after_another() -> None:
    schedule = spec("@daily")
    moments = backfill_slots(schedule, START - timedelta(days=3), START)
    status = queue_backfill(
        ScheduleStatus(last_scheduled_time=START), UID, moments, OverlapPolicy.BUFFER_ALL
    )
    first = ticked(schedule, status, START + HOUR)
    assert first.fire == [Firing(run_id_for(UID, moments[0]), moments[0], True)]
    assert first.status.active[0].backfill is True
    assert len(first.status.pending) == 2
    ended = {first.fire[0].run_id: RunPhase.SUCCEEDED}
    second = ticked(schedule, first.status, START + HOUR, ended)
    assert fired_times(second) == [moments[1]]


def test_jitter_delays_a_slot() -> None:
    schedule = spec("@hourly", jitter_seconds=600)
    delay = jitter(UID, START + HOUR, 600)
    assert delay == timedelta(minutes=1, seconds=54, milliseconds=54)
    early = ticked(schedule, ScheduleStatus(), START + HOUR)
    assert early.fire == []
    assert early.wake_at == START + HOUR + delay
    on_time = ticked(schedule, ScheduleStatus(), START + HOUR + delay)
    assert fired_times(on_time) == [START + HOUR]


def test_a_round_handles_a_bounded_number_of_slots() -> None:
    """Two days of an every-second schedule away: one round counts or handles at most
    MAX_SLOTS_PER_TICK slots each way, and asks for the next round at once."""
    schedule = spec("@every 1s", catchup_window_seconds=86400)
    now = START + timedelta(days=2)
    status = ScheduleStatus(last_scheduled_time=START)
    result = ticked(schedule, status, now)
    assert result.status.missed == MAX_SLOTS_PER_TICK  # of 86,399 past the window
    assert result.status.fired == 1
    assert result.status.skipped == MAX_SLOTS_PER_TICK - 1
    assert result.wake_at == now
    last = result.status.last_scheduled_time
    assert last == START + timedelta(days=1, seconds=MAX_SLOTS_PER_TICK - 1)


def test_a_long_suspended_minutely_schedule_is_quick() -> None:
    schedule = spec("* * * * *", suspend=True, timezone="Europe/Berlin")
    now = START + timedelta(days=365)
    result = ticked(schedule, ScheduleStatus(last_scheduled_time=START), now)
    # Counted one by one up to the bound, then the jump to `now`, whose slot is handled.
    assert result.status.missed == MAX_SLOTS_PER_TICK + 1
    assert result.status.last_scheduled_time == now
    assert result.status.next_scheduled_time == now + timedelta(minutes=1)


def test_changing_the_entries_goes_on_from_now_without_catching_up() -> None:
    daily = spec("0 0 * * *", overlap_policy=OverlapPolicy.ALLOW_ALL)
    first = ticked(daily, ScheduleStatus(), START + timedelta(days=1, minutes=1))
    assert [firing.scheduled_time for firing in first.fire] == [START + timedelta(days=1)]
    now = START + timedelta(days=1, hours=10, minutes=30)
    every_five = daily.model_copy(update={"schedule": ["*/5 * * * *"]})
    changed = ticked(every_five, first.status, now)
    assert changed.fire == []  # 10:30's slots of the new entry never were: none fires
    assert changed.status.missed == first.status.missed
    assert changed.status.next_scheduled_time == now + timedelta(minutes=5)
    later = ticked(every_five, changed.status, now + timedelta(minutes=5, seconds=1))
    assert [firing.scheduled_time for firing in later.fire] == [now + timedelta(minutes=5)]


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "/etc/localtime"])
def test_the_hosts_own_zone_is_not_a_time_zone(zone: str) -> None:
    with pytest.raises(SpecError, match="Unknown time zone"):
        check_spec(spec("@daily", timezone=zone))
