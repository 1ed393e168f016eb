"""The user's commands: submit, get, list, watch, logs, cancel, delete, tasks.

Each talks to the HTTP API through `stageflow.client` (at `--server`/STAGEFLOW_URL,
with `--token`/STAGEFLOW_TOKEN as a bearer token). Exit status, as Argo's CLI: 0 the
run Succeeded (or the command did its job), 1 it Failed, 3 it was Cancelled, 2 bad
usage or an error from the API, said on stderr. The client, rich and YAML are imported
when a command runs (`stageflow.cli.session`), not when the CLI starts.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from stageflow import DEFAULT_URL
from stageflow.engine import RunPhase

COMPLETION_TIMEOUT = 2.0  # a shell waits on completion: give up rather than hang

Server = Annotated[
    str,
    typer.Option(
        "--server", "-s", envvar="STAGEFLOW_URL", help="The stageflow API.", show_envvar=True
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="STAGEFLOW_TOKEN",
        help="Sent as `Authorization: Bearer TOKEN`.",
        show_envvar=True,
        show_default=False,
    ),
]


def _complete_run_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a run id: the newest runs the server lists."""
    from stageflow.client import Client, ClientError

    server = ctx.params.get("server") or os.environ.get("STAGEFLOW_URL", DEFAULT_URL)
    token = ctx.params.get("token") or os.environ.get("STAGEFLOW_TOKEN")
    try:
        with Client(server, token, timeout=COMPLETION_TIMEOUT) as client:
            return [
                run.run_id for run in client.list(limit=100) if run.run_id.startswith(incomplete)
            ]
    except ClientError:
        return []


RunId = Annotated[
    str,
    typer.Argument(
        metavar="RUN_ID",
        help="The run's id (from `submit` or `list`).",
        autocompletion=_complete_run_id,
    ),
]


# Shared by `submit` and `retry`: a run parameter set (or overridden), and following the run.
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="KEY=VALUE", help="Set a run parameter (repeatable)."),
]
Watch = Annotated[bool, typer.Option("--watch", "-w", help="Follow the run until it ends.")]


class Output(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"


def submit(
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE|-",
            help="The request body, JSON or YAML; `-` for stdin. Not with --template.",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            "-t",
            metavar="NAME",
            help="Run this template (`stageflow template list`) instead of a FILE; "
            "--param gives its params.",
        ),
    ] = None,
    revision: Annotated[
        int | None,
        typer.Option(
            "--revision", min=1, help="With --template: this revision, not the current one."
        ),
    ] = None,
    param: Params = None,
    watch: Watch = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Submit a workflow (FILE, or --template NAME) and print its run id; -w follows it.

    With --watch the exit status is the run's: 0 Succeeded, 1 Failed, 3 Cancelled.
    """
    from stageflow.cli.inputs import UsageError, read_body, with_params
    from stageflow.cli.session import connect, follow_to_the_end

    with connect(server, token) as client:
        if template is not None:
            if file is not None:
                raise UsageError("give a FILE or --template, not both")
            params = with_params({}, param or []).get("params", {})
            submitted = client.submit_template(template, params, revision)
        elif file is None:
            raise UsageError("give a FILE (`-` for stdin) or --template NAME")
        elif revision is not None:
            raise UsageError("--revision goes with --template")
        else:
            submitted = client.submit(with_params(read_body(file), param or []))
        if not watch:
            print(submitted.run_id)
            return
        follow_to_the_end(client, submitted.run_id)


def get(
    run_id: RunId,
    output: Annotated[
        Output | None, typer.Option("--output", "-o", help="Print the whole run as data.")
    ] = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Show a run: its stages or DAG levels, each task's phase, attempts, duration, message."""
    from stageflow.cli.session import connect, console
    from stageflow.cli.view import run_view

    with connect(server, token) as client:
        record = client.get(run_id)
    if output is Output.JSON:
        print(json.dumps(record.to_json_dict(), indent=2))
    elif output is Output.YAML:
        import yaml

        print(yaml.safe_dump(record.to_json_dict(), sort_keys=False), end="")
    else:
        console().print(run_view(record))


def list_runs(
    phase: Annotated[
        RunPhase | None, typer.Option(help="Only runs in this phase.", case_sensitive=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """List runs, newest first."""
    from stageflow.cli.session import connect, console
    from stageflow.cli.view import runs_table

    with connect(server, token) as client:
        runs = list(client.list(phase=phase, limit=limit))
    console().print(runs_table(runs))


def watch(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Follow a run live until it ends.

    The exit status is the run's: 0 Succeeded, 1 Failed, 3 Cancelled.
    """
    from stageflow.cli.session import connect, follow_to_the_end

    with connect(server, token) as client:
        follow_to_the_end(client, run_id)


def logs(
    run_id: RunId,
    task: Annotated[str, typer.Argument(metavar="TASK", help="The task's id in the run.")],
    server: Server = DEFAULT_URL,
    token: Token = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing while the task runs.")
    ] = False,
) -> None:
    """Print a task's log (its latest attempt); with -f, follow it until the task ends."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        if follow:
            text = ""
            for text in client.follow_logs(run_id, task):
                sys.stdout.write(text)
                sys.stdout.flush()
            if text and not text.endswith("\n"):
                sys.stdout.write("\n")
            return
        text = client.logs(run_id, task)
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


def cancel(
    run_id: RunId,
    force: Annotated[
        bool, typer.Option("--force", help="Cancel its finally tasks too (they run otherwise).")
    ] = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Cancel a run: running tasks are cancelled, the rest become Cancelled; then its
    finally tasks run, unless --force."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.cancel(run_id, force=force)
    print(f"{run_id}: cancel requested")


def retry(
    run_id: RunId,
    from_task: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="TASK",
            help="Re-run TASK and every task after it, even if they succeeded.",
        ),
    ] = None,
    param: Params = None,
    watch: Watch = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Retry a Failed or Cancelled run from its failure, in place (the same run id): what
    succeeded keeps its outputs and does not run again.

    With --watch the exit status is the run's: 0 Succeeded, 1 Failed, 3 Cancelled.
    """
    from stageflow.cli.inputs import with_params
    from stageflow.cli.session import connect, follow_to_the_end

    params = with_params({}, param or []).get("params")
    with connect(server, token) as client:
        client.retry(run_id, from_task=from_task, params=params)
        if not watch:
            print(f"{run_id}: retry requested")
            return
        follow_to_the_end(client, run_id)


Comment = Annotated[
    str | None, typer.Option("--comment", "-c", help="Why; recorded in the task's status.")
]


def approve(
    run_id: RunId,
    task: Annotated[str, typer.Argument(metavar="TASK", help="The approval task waiting.")],
    comment: Comment = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            "-o",
            metavar="KEY=VALUE",
            help="What the task's inputs ask for (repeatable; VALUE read as JSON when it is).",
        ),
    ] = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Approve a task that waits for approval: the run goes on."""
    from stageflow.cli.inputs import with_params
    from stageflow.cli.session import connect

    outputs = with_params({}, output or [], flag="--output").get("params")
    with connect(server, token) as client:
        client.approve(run_id, task, comment=comment, outputs=outputs)
    print(f"{run_id}: {task} approved")


def reject(
    run_id: RunId,
    task: Annotated[str, typer.Argument(metavar="TASK", help="The approval task waiting.")],
    comment: Comment = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Reject a task that waits for approval: it fails."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.reject(run_id, task, comment=comment)
    print(f"{run_id}: {task} rejected")


def suspend(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Suspend a run: no new task starts until `stageflow resume` (running ones finish)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.suspend(run_id)
    print(f"{run_id}: suspend requested")


def resume(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Resume a suspended run."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.resume(run_id)
    print(f"{run_id}: resume requested")


def delete(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Delete a run (one still running is cancelled first)."""
    from stageflow.cli.session import connect

    with connect(server, token) as client:
        client.delete(run_id)
    print(f"{run_id}: deleted")


def tasks(server: Server = DEFAULT_URL, token: Token = None) -> None:
    """What the server can run, with each task's parameters."""
    from rich.table import Table

    from stageflow.cli.session import connect, console

    with connect(server, token) as client:
        found = client.tasks()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "PARAMETERS", "DESCRIPTION"):
        table.add_column(column)
    for info in found:
        table.add_row(info.name, ", ".join(info.parameters), info.description)
    console().print(table)


COMMANDS: dict[str, Callable[..., None]] = {
    "submit": submit,
    "get": get,
    "list": list_runs,
    "watch": watch,
    "logs": logs,
    "cancel": cancel,
    "retry": retry,
    "approve": approve,
    "reject": reject,
    "suspend": suspend,
    "resume": resume,
    "delete": delete,
    "tasks": tasks,
}
