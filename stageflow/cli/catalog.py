"""`stageflow template ...` and `stageflow schedule ...`: workflow templates and schedules
through the HTTP API (docs/templates.md, docs/schedules.md).

`apply -f FILE` reads JSON or YAML holding either `{"name": ..., "spec": {...}}` or the
Kubernetes resource itself (`apiVersion: stageflow.dev/v1alpha1`, `kind: WorkflowTemplate`
or `Schedule`, `metadata.name`, `spec`), so one file serves `kubectl apply` and this CLI.
Errors are the other user commands': a line on stderr and exit status 2. The client, rich
and YAML are imported when a command runs, not when the CLI starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stageflow import DEFAULT_URL
from stageflow.cli.runs import Output, Server, Token
from stageflow.models.schedule import OverlapPolicy

if TYPE_CHECKING:
    from rich.console import RenderableType

    from stageflow.client import Client
    from stageflow.models.schedule import ScheduledRun, ScheduleRecord
    from stageflow.models.template import TemplateRecord

API_GROUP = "stageflow.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
TEMPLATE_KIND = "WorkflowTemplate"
SCHEDULE_KIND = "Schedule"
DIGEST_SHOWN = 12  # hex digits of a digest in a table, as git shows a commit

template_app = typer.Typer(
    name="template",
    help="Workflow templates: a workflow body kept under a name, with declared params.",
    no_args_is_help=True,
)
schedule_app = typer.Typer(
    name="schedule",
    help="Schedules: a template (or a workflow) started on a cron clock.",
    no_args_is_help=True,
)

File = Annotated[
    str,
    typer.Option(
        "--filename",
        "-f",
        metavar="FILE|-",
        help="JSON or YAML: {name, spec} or the Kubernetes resource; `-` for stdin.",
    ),
]
OutputOption = Annotated[
    Output | None, typer.Option("--output", "-o", help="Print the whole record as data.")
]


# -- reading a manifest ----------------------------------------------------------------------


def manifest(body: dict[str, Any], kind: str, where: str) -> tuple[str, dict[str, Any]]:
    """The name and spec in a file: `{name, spec}`, or a resource of `kind` (a mistake is a
    `UsageError`, said before anything is sent)."""
    from stageflow.cli.inputs import UsageError

    if "apiVersion" in body or "kind" in body:
        api_version, found = body.get("apiVersion"), body.get("kind")
        if not isinstance(api_version, str) or not api_version.startswith(f"{API_GROUP}/"):
            raise UsageError(f"{where}: apiVersion must be {API_VERSION}, not {api_version!r}")
        if found != kind:
            raise UsageError(f"{where} holds a {found}, not a {kind}")
        metadata = body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        spec = body.get("spec")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: a {kind} needs metadata.name")
    else:
        extra = sorted(set(body) - {"name", "spec"})
        if extra or not {"name", "spec"} <= set(body):
            raise UsageError(
                f"{where} must hold {{name, spec}} or a {API_VERSION} {kind} resource"
                + (f" (unknown keys: {', '.join(extra)})" if extra else "")
            )
        name, spec = body["name"], body["spec"]
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: `name` must be a string")
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: the {kind}'s `spec` must be an object")
    return name, spec


def _read_manifest(source: str, kind: str) -> tuple[str, dict[str, Any]]:
    from stageflow.cli.inputs import read_body

    return manifest(read_body(source), kind, "stdin" if source == "-" else source)


# -- templates ------------------------------------------------------------------------------


@template_app.command("apply")
def apply_template(file: File, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Create or replace a template (a changed spec is its next revision)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        name, spec = _read_manifest(file, TEMPLATE_KIND)
        before = _current(client, name)
        record = client.put_template(name, spec)
    if before is None:
        outcome = "created"
    elif before == record.revision:
        outcome = "unchanged"
    else:
        outcome = "configured"
    print(f"template {record.name} {outcome} (revision {record.revision})")


def _current(client: Client, name: str) -> int | None:
    """The template's revision now; None when there is none (or it may not be read)."""
    from stageflow.client import ApiError, NotFoundError

    try:
        return client.template(name).revision
    except NotFoundError:
        return None
    except ApiError as error:
        if error.status_code == 403:  # may write but not read: say `configured`
            return 0
        raise


@template_app.command("list")
def list_templates(server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Every template, each at its current revision."""
    from rich.table import Table

    from stageflow.cli.session import connect, console

    with connect(server, token) as client:
        found = client.templates()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "REVISION", "DIGEST", "UPDATED"):
        table.add_column(column, no_wrap=True)
    for record in found:
        table.add_row(
            record.name,
            str(record.revision),
            short_digest(record.digest),
            _ago(record.updated_at or record.created_at),
        )
    console().print(table)


@template_app.command("get")
def get_template(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    revision: Annotated[
        int | None,
        typer.Option("--revision", "-r", min=1, help="That revision (while it is kept)."),
    ] = None,
    output: OutputOption = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Show a template: its revision, digest, declared params and workflow body."""
    from stageflow.cli.session import connect, console

    with connect(server, token) as client:
        record = client.template(name, revision)
    if output is not None:
        _print_data(record.to_json_dict(), output)
        return
    console().print(template_view(record))


@template_app.command("delete")
def delete_template(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Delete a template and its revisions (runs made from it keep what they ran)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.delete_template(name)
    print(f"template {name} deleted")


def template_view(record: TemplateRecord) -> RenderableType:
    import yaml
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    kept = ", ".join(str(number) for number in record.revisions)
    lines = [
        Text.assemble(
            ("Template ", "bold"), (record.name, "bold"), f"  revision {record.revision}"
        ),
        Text(f"Digest:     {record.digest}"),
        Text(f"Revisions:  {kept or record.revision} (kept)"),
    ]
    if record.created_at is not None:
        lines.append(Text(f"Created:    {when(record.created_at)}"))
    if record.updated_at is not None:
        lines.append(Text(f"Updated:    {when(record.updated_at)}"))
    parts: list[RenderableType] = [*lines]
    declared = record.spec.normalised_json()["params"]
    # What was written, without the defaults every body has (`-o yaml` shows them).
    body = record.spec.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude={"params"}
    )
    if declared:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("PARAM", "DEFAULT", "DESCRIPTION"):
            table.add_column(column)
        for param, declaration in declared.items():
            default = (
                json.dumps(declaration["default"]) if "default" in declaration else "(required)"
            )
            table.add_row(param, default, declaration.get("description") or "")
        parts += [Text(""), table]
    parts += [
        Text(""),
        Text("Workflow:", style="bold"),
        Text(yaml.safe_dump(body, sort_keys=False).rstrip()),
    ]
    return Group(*parts)


def short_digest(digest: str) -> str:
    return digest.partition(":")[2][:DIGEST_SHOWN] if ":" in digest else digest[:DIGEST_SHOWN]


# -- schedules ------------------------------------------------------------------------------


ScheduleName = Annotated[str, typer.Argument(metavar="NAME")]


@schedule_app.command("apply")
def apply_schedule(file: File, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Create or replace a schedule (what the scheduler recorded of it stays)."""
    from stageflow.cli.session import connect
    from stageflow.client import NotFoundError

    with connect(server, token) as client:
        name, spec = _read_manifest(file, SCHEDULE_KIND)
        try:
            before = client.schedule(name).spec
        except NotFoundError:
            before = None
        record = client.put_schedule(name, spec)
    if before is None:
        outcome = "created"
    elif before == record.spec:
        outcome = "unchanged"
    else:
        outcome = "configured"
    print(f"schedule {record.name} {outcome}")


@schedule_app.command("list")
def list_schedules(server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Every schedule: its clock, when it last fired and fires next, runs going."""
    from rich.table import Table

    from stageflow.cli.session import connect, console

    with connect(server, token) as client:
        found = client.schedules()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "SCHEDULE", "TIMEZONE", "LAST", "NEXT", "ACTIVE", "SUSPENDED"):
        table.add_column(column, no_wrap=True)
    for record in found:
        status = record.status
        table.add_row(
            record.name,
            ", ".join(record.spec.schedule),
            record.spec.timezone,
            _ago(status.last_scheduled_time),
            _until(status.next_scheduled_time),
            str(len(status.active)),
            str(record.spec.suspend).lower(),
        )
    console().print(table)


@schedule_app.command("get")
def get_schedule(
    name: ScheduleName,
    output: OutputOption = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Show a schedule: what it runs and when, its last and next slot, its runs going and
    recent, and how many slots fired, were skipped or missed."""
    from stageflow.cli.session import connect, console

    with connect(server, token) as client:
        record = client.schedule(name)
    if output is not None:
        _print_data(record.to_json_dict(), output)
        return
    console().print(schedule_view(record))


@schedule_app.command("delete")
def delete_schedule(name: ScheduleName, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Delete a schedule (the runs it started stay)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.delete_schedule(name)
    print(f"schedule {name} deleted")


@schedule_app.command("pause")
def pause_schedule(name: ScheduleName, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Suspend a schedule: no slot fires (slots that pass are counted as missed)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.pause_schedule(name)
    print(f"schedule {name} paused")


@schedule_app.command("resume")
def resume_schedule(name: ScheduleName, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Resume a suspended schedule: slots fire again from now on."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.resume_schedule(name)
    print(f"schedule {name} resumed")


@schedule_app.command("backfill")
def backfill_schedule(
    name: ScheduleName,
    start: Annotated[
        str, typer.Option("--from", metavar="TIME", help="The first slot's earliest (RFC 3339).")
    ],
    end: Annotated[
        str, typer.Option("--to", metavar="TIME", help="The end, not included (RFC 3339).")
    ],
    overlap_policy: Annotated[
        OverlapPolicy | None,
        typer.Option(
            "--overlap-policy",
            case_sensitive=False,
            help="BufferAll (the API's default): one run after another; AllowAll: at once.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the slots; queue nothing.")
    ] = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Fire the schedule's slots in [--from, --to), each at most once (a slot that already
    fired does not fire again)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        result = client.backfill(name, start, end, overlap_policy=overlap_policy, dry_run=dry_run)
    for slot in result.slots:
        print(rfc3339(slot))
    count = len(result.slots)
    slots = f"{count} slot" + ("" if count == 1 else "s")
    if result.dry_run:
        print(f"{slots} (dry run: none queued)")
    else:
        print(f"{slots}, {result.queued} queued")


def schedule_view(record: ScheduleRecord, *, now: datetime | None = None) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    spec, status = record.spec, record.status
    state = "suspended" if spec.suspend else "active"
    if spec.template_ref is not None:
        ref = spec.template_ref
        runs = f"template {ref.name}" + (
            f"@{ref.revision}" if ref.revision is not None else " (current revision)"
        )
    else:
        runs = "an inline workflow"
    settings = [
        f"overlap {spec.overlap_policy.value}",
        f"catch-up {spec.catchup_window_seconds}s",
    ]
    if spec.jitter_seconds:
        settings.append(f"jitter {spec.jitter_seconds}s")
    if spec.pause_on_failure:
        settings.append("pause on failure")
    lines = [
        Text.assemble(("Schedule ", "bold"), (record.name, "bold"), f"  {state}"),
        Text(f"Schedule:  {', '.join(spec.schedule)} ({spec.timezone})"),
        Text(f"Runs:      {runs}"),
    ]
    if spec.params:
        params = ", ".join(f"{key}={json.dumps(value)}" for key, value in spec.params.items())
        lines.append(Text(f"Params:    {params}"))
    if spec.labels:
        labels = ", ".join(f"{key}={value}" for key, value in spec.labels.items())
        lines.append(Text(f"Labels:    {labels}"))
    lines += [
        Text(f"Policy:    {', '.join(settings)}"),
        Text(f"Last:      {when(status.last_scheduled_time, now)}"),
        Text(f"Next:      {when(status.next_scheduled_time, now)}"),
        Text(
            f"Slots:     {status.fired} fired, {status.skipped} skipped, {status.missed} missed"
            + (f", {len(status.pending)} pending" if status.pending else "")
        ),
    ]
    if status.last_run_phase is not None:
        lines.append(Text(f"Last run:  {status.last_run_phase.value}"))
    if status.message:
        lines.append(Text(f"Message:   {status.message}", style="yellow"))
    parts: list[RenderableType] = [*lines]
    for title, scheduled in (("Active", status.active), ("Recent", status.recent)):
        if scheduled:
            parts += [Text(""), Text(f"{title} runs:", style="bold"), _runs_table(scheduled)]
    return Group(*parts)


def _runs_table(scheduled: Iterable[ScheduledRun]) -> RenderableType:
    from rich.table import Table

    from stageflow.cli.view import phase_text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("RUN", "SCHEDULED", "PHASE", "BACKFILL"):
        table.add_column(column, no_wrap=True)
    for run in scheduled:
        table.add_row(
            run.run_id,
            rfc3339(run.scheduled_time),
            phase_text(run.phase) if run.phase is not None else "",
            "yes" if run.backfill else "",
        )
    return table


# -- shared ---------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """In UTC, to the second: `2026-11-22T02:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """`2026-11-22T02:00:00Z (3h ago)`, `... (in 5m)`; `-` for none."""
    if moment is None:
        return "-"
    from stageflow.models.status import utcnow

    current = now or utcnow()
    relative = (
        f"{_ago(moment, current)} ago" if moment <= current else f"in {_until(moment, current)}"
    )
    return f"{rfc3339(moment)} ({relative})"


def _ago(moment: datetime | None, now: datetime | None = None) -> str:
    from stageflow.cli.view import age

    return "-" if moment is None else age(moment, now)


def _until(moment: datetime | None, now: datetime | None = None) -> str:
    """How long until `moment`, as kubectl writes an age; `now` once it is due."""
    from stageflow.cli.view import age
    from stageflow.models.status import utcnow

    if moment is None:
        return "-"
    current = now or utcnow()
    if moment <= current:
        return "now"
    return age(current, moment)


def _print_data(data: dict[str, Any], output: Output) -> None:
    if output is Output.JSON:
        print(json.dumps(data, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
