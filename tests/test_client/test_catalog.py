"""Templates and schedules through `Client` and `AsyncClient`, against a real API on every
backend: create and revise, read a revision, run by reference (the run keeps its origin),
schedule, pause, resume and backfill; the API's refusals as the client's exceptions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from stageflow.client import ApiError, AsyncClient, Client, NotFoundError, RunPhase, Submitted
from stageflow.models.schedule import (
    BackfillResult,
    OverlapPolicy,
    ScheduleRecord,
    ScheduleSpec,
)
from stageflow.models.template import TemplateRecord, TemplateRef, WorkflowTemplateSpec
from tests.support.polling import wait_until

GREETING: dict[str, Any] = {
    "dag": [
        {
            "name": "hello",
            "task": "echo",
            "params": {"who": "{{ params.who }}", "times": "{{ params.times }}"},
        }
    ],
    "params": {
        "who": {"description": "Whom to greet."},
        "times": {"default": 1},
    },
}


def unique(prefix: str) -> str:
    """A name no other test of the module (sharing one API) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def hourly(template: str, **spec: Any) -> dict[str, Any]:
    return {"schedule": "0 * * * *", "templateRef": {"name": template}, **spec}


@pytest.fixture
def client(api_url: str) -> Iterator[Client]:
    with Client(api_url) as client:
        yield client


@pytest.fixture
async def aclient(api_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_url) as client:
        yield client


def test_a_changed_spec_is_the_next_revision_and_an_unchanged_one_keeps_it(
    client: Client,
) -> None:
    name = unique("greet")
    first = client.put_template(name, GREETING)
    assert isinstance(first, TemplateRecord)
    assert (first.name, first.revision) == (name, 1)
    assert first.digest.startswith("sha256:")
    assert client.put_template(name, GREETING).revision == 1

    changed = {**GREETING, "params": {**GREETING["params"], "times": {"default": 2}}}
    second = client.put_template(name, changed)
    assert second.revision == 2
    assert second.digest != first.digest
    assert client.template(name).revisions == [1, 2]
    assert client.template(name).spec.params["times"].default == 2
    old = client.template(name, revision=1)
    assert (old.revision, old.digest) == (1, first.digest)
    assert old.spec.params["times"].default == 1
    assert old.spec.params["who"].required
    listed = {record.name: record for record in client.templates()}
    assert listed[name].revision == 2


def test_a_spec_model_is_sent_in_its_normalised_form(client: Client) -> None:
    name = unique("model")
    spec = WorkflowTemplateSpec.model_validate(GREETING)
    record = client.put_template(name, spec)
    assert record.digest == spec.digest()
    assert client.put_template(name, GREETING).revision == 1  # the same spec as a mapping


def test_a_run_by_reference_resolves_its_params_and_keeps_its_origin(client: Client) -> None:
    name = unique("greet")
    first = client.put_template(name, GREETING)
    client.put_template(name, {**GREETING, "name": "greeting, revised"})

    submitted = client.submit_template(
        name, {"who": "ada"}, revision=1, name="by-reference", labels={"team": "data"}
    )
    assert isinstance(submitted, Submitted)
    run = client.wait(submitted.run_id, timeout=60)
    assert run.status.phase is RunPhase.SUCCEEDED
    assert run.status.tasks["hello"].outputs == {"who": "ada", "times": 1}
    assert run.name == "by-reference"
    assert run.labels["team"] == "data"
    assert run.origin is not None
    assert (run.origin.template, run.origin.template_revision) == (name, 1)
    assert run.origin.template_digest == first.digest
    assert run.origin.schedule is None

    current = client.wait(client.submit_template(name, {"who": "bo", "times": 3}).run_id, 60)
    assert current.origin is not None
    assert current.origin.template_revision == 2
    assert current.status.tasks["hello"].outputs == {"who": "bo", "times": 3}


def test_refusals_are_the_clients_exceptions(client: Client) -> None:
    name = unique("greet")
    with pytest.raises(NotFoundError, match="not found"):
        client.template(name)
    client.put_template(name, GREETING)
    with pytest.raises(NotFoundError) as missing:
        client.template(name, revision=7)
    assert missing.value.status_code == 404
    with pytest.raises(ApiError) as unknown_task:
        client.put_template(name, {"dag": [{"name": "x", "task": "no_such_task"}]})
    assert unknown_task.value.status_code == 400
    assert "no_such_task" in str(unknown_task.value.detail)
    assert client.template(name).revision == 1  # nothing was written
    with pytest.raises(ApiError) as required:
        client.submit_template(name)  # `who` has no default
    assert required.value.status_code == 400
    assert "who" in str(required.value.detail)
    with pytest.raises(ApiError) as unknown:
        client.submit_template(unique("ghost"))
    assert unknown.value.status_code in (400, 404)
    with pytest.raises(ApiError) as bad_name:
        client.put_template("Not_A_DNS_Label", GREETING)
    assert bad_name.value.status_code in (400, 422)

    client.delete_template(name)
    with pytest.raises(NotFoundError):
        client.template(name)
    with pytest.raises(NotFoundError):
        client.delete_template(name)
    assert name not in {record.name for record in client.templates()}


def test_a_schedule_is_created_read_paused_resumed_and_deleted(client: Client) -> None:
    template, name = unique("greet"), unique("hourly")
    client.put_template(template, GREETING)
    created = client.put_schedule(name, hourly(template, params={"who": "cron"}))
    assert isinstance(created, ScheduleRecord)
    assert created.spec.schedule == ["0 * * * *"]
    assert created.spec.template_ref == TemplateRef(name=template)
    assert created.spec.overlap_policy is OverlapPolicy.SKIP
    # The scheduler writes the status, soon after: when the next slot fires.
    wait_until(lambda: client.schedule(name).status.next_scheduled_time is not None)
    upcoming = client.schedule(name).status.next_scheduled_time
    assert upcoming is not None
    assert upcoming > datetime.now(UTC)
    assert (upcoming.minute, upcoming.second) == (0, 0)

    model = ScheduleSpec.model_validate(hourly(template, params={"who": "cron"}, timezone="UTC"))
    replaced = client.put_schedule(name, model.model_copy(update={"jitter_seconds": 5}))
    assert replaced.uid == created.uid
    assert replaced.spec.jitter_seconds == 5
    assert client.schedule(name).spec.jitter_seconds == 5
    assert name in {record.name for record in client.schedules()}

    assert client.pause_schedule(name).spec.suspend is True
    assert client.schedule(name).spec.suspend is True
    assert client.resume_schedule(name).spec.suspend is False

    client.delete_schedule(name)
    for call in (client.schedule, client.pause_schedule, client.delete_schedule):
        with pytest.raises(NotFoundError, match="not found"):
            call(name)


def test_a_schedule_that_does_not_validate_is_refused(client: Client) -> None:
    template = unique("greet")
    client.put_template(template, GREETING)
    with pytest.raises(ApiError) as cron:
        client.put_schedule(unique("bad"), hourly(template, schedule="61 * * * *"))
    assert cron.value.status_code in (400, 422)
    with pytest.raises(ApiError) as zone:
        client.put_schedule(unique("bad"), hourly(template, timezone="Mars/Olympus"))
    assert zone.value.status_code in (400, 422)
    with pytest.raises(ApiError) as both:
        client.put_schedule(unique("bad"), {"schedule": "@hourly"})  # runs nothing
    assert both.value.status_code in (400, 422)


def test_backfill_lists_its_slots_then_fires_each_once(client: Client) -> None:
    template, name = unique("greet"), unique("hourly")
    client.put_template(template, GREETING)
    client.put_schedule(name, hourly(template, params={"who": "backfill"}))
    start, end = datetime(2024, 1, 1, tzinfo=UTC), "2024-01-01T03:00:00Z"

    dry = client.backfill(name, start, end, dry_run=True)
    assert isinstance(dry, BackfillResult)
    assert dry.dry_run is True
    assert dry.queued == 0
    assert [slot.hour for slot in dry.slots] == [0, 1, 2]
    assert client.schedule(name).status.fired == 0

    done = client.backfill(name, start, "2024-01-01T02:00:00Z", OverlapPolicy.ALLOW_ALL)
    assert (done.dry_run, done.queued) == (False, 2)

    wait_until(lambda: len(client.schedule(name).status.recent) == 2, within=60)
    record = client.schedule(name)
    assert record.status.fired == 2
    assert all(run.backfill for run in record.status.recent)
    run = client.get(record.status.recent[0].run_id)
    assert run.origin is not None
    assert (run.origin.schedule, run.origin.template, run.origin.backfill) == (
        name,
        template,
        True,
    )
    assert run.origin.scheduled_time == record.status.recent[0].scheduled_time

    with pytest.raises(ApiError) as reversed_range:
        client.backfill(name, end, start)
    assert reversed_range.value.status_code == 400
    with pytest.raises(NotFoundError):
        client.backfill(unique("ghost"), start, end, dry_run=True)


async def test_the_async_client_has_the_same_calls(aclient: AsyncClient) -> None:
    template, name = unique("greet"), unique("hourly")
    assert (await aclient.put_template(template, GREETING)).revision == 1
    assert (await aclient.template(template, 1)).name == template
    assert template in {record.name for record in await aclient.templates()}
    run_id = (await aclient.submit_template(template, {"who": "async"})).run_id
    run = await aclient.wait(run_id, timeout=60)
    assert run.origin is not None
    assert run.origin.template == template

    await aclient.put_schedule(name, hourly(template, params={"who": "async"}))
    assert (await aclient.schedule(name)).name == name
    assert name in {record.name for record in await aclient.schedules()}
    assert (await aclient.pause_schedule(name)).spec.suspend is True
    assert (await aclient.resume_schedule(name)).spec.suspend is False
    result = await aclient.backfill(
        name, "2024-01-01T00:00:00Z", "2024-01-01T02:00:00Z", dry_run=True
    )
    assert len(result.slots) == 2
    await aclient.delete_schedule(name)
    await aclient.delete_template(template)
    with pytest.raises(NotFoundError):
        await aclient.schedule(name)
    with pytest.raises(NotFoundError):
        await aclient.template(template)
