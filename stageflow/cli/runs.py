"""The user's commands: submit, get, list, watch, logs, cancel, delete, tasks.

Each talks to the HTTP API through `stageflow.client` (at `--server`/STAGEFLOW_URL,
with `--token`/STAGEFLOW_TOKEN as a bearer token). Exit status, as Argo's CLI: 0 the
run Succeeded (or the command did its job), 1 it Failed, 3 it was Cancelled, 2 bad
usage or an error from the API, said on stderr.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from stageflow.cli.inputs import UsageError, read_body, with_params
from stageflow.cli.view import EXIT_CODES, LiveRun, run_view, runs_table, transitions
from stageflow.client import (
    DEFAULT_URL,
    ApiError,
    Client,
    ClientError,
    RunPhase,
    RunRecord,
    UnreachableError,
    apply,
)
from stageflow.client.errors import describe

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PLAIN_WIDTH = 160
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
    typer.Argument(help="The run's id (from `submit` or `list`).", autocompletion=_complete_run_id),
]


class Output(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"


def submit(
    file: Annotated[str, typer.Argument(help="The request body, JSON or YAML; `-` for stdin.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE: set a run parameter (repeatable)."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the run until it ends.")
    ] = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Submit a workflow and print its run id; --watch follows it.

    With --watch the exit status is the run's: 0 Succeeded, 1 Failed, 3 Cancelled.
    """
    with _client(server, token) as client:
        submitted = client.submit(with_params(read_body(file), param or []))
        if not watch:
            print(submitted.run_id)
            return
        _exit_with(_follow(client, submitted.run_id))


def get(
    run_id: RunId,
    output: Annotated[
        Output | None, typer.Option("--output", "-o", help="Print the whole run as data.")
    ] = None,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Show a run: its stages or DAG levels, each task's phase, attempts, duration, message."""
    with _client(server, token) as client:
        record = client.get(run_id)
    if output is Output.JSON:
        print(json.dumps(record.to_json_dict(), indent=2))
    elif output is Output.YAML:
        print(yaml.safe_dump(record.to_json_dict(), sort_keys=False), end="")
    else:
        _console().print(run_view(record))


def list_runs(
    phase: Annotated[
        RunPhase | None, typer.Option(help="Only runs in this phase.", case_sensitive=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """List runs, newest first."""
    with _client(server, token) as client:
        runs = list(client.list(phase=phase, limit=limit))
    _console().print(runs_table(runs))


def watch(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Follow a run live until it ends.

    The exit status is the run's: 0 Succeeded, 1 Failed, 3 Cancelled.
    """
    with _client(server, token) as client:
        _exit_with(_follow(client, run_id))


def logs(
    run_id: RunId,
    task: Annotated[str, typer.Argument(help="The task's id in the run.")],
    server: Server = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print a task's log (its latest attempt)."""
    with _client(server, token) as client:
        text = client.logs(run_id, task)
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


def cancel(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Cancel a run: running tasks are cancelled, the rest become Cancelled."""
    with _client(server, token) as client:
        client.cancel(run_id)
    print(f"{run_id}: cancel requested")


def delete(run_id: RunId, server: Server = DEFAULT_URL, token: Token = None) -> None:
    """Delete a run (one still running is cancelled first)."""
    with _client(server, token) as client:
        client.delete(run_id)
    print(f"{run_id}: deleted")


def tasks(server: Server = DEFAULT_URL, token: Token = None) -> None:
    """What the server can run, with each task's parameters."""
    with _client(server, token) as client:
        found = client.tasks()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "PARAMETERS", "DESCRIPTION"):
        table.add_column(column)
    for info in found:
        table.add_row(info.name, ", ".join(info.parameters), info.description)
    _console().print(table)


COMMANDS: dict[str, Callable[..., None]] = {
    "submit": submit,
    "get": get,
    "list": list_runs,
    "watch": watch,
    "logs": logs,
    "cancel": cancel,
    "delete": delete,
    "tasks": tasks,
}


def _follow(client: Client, run_id: str) -> RunRecord:
    """Show the run until it ends: redrawn in place on a terminal, else a line per change
    and the whole run at the end. Returns the finished run."""
    console = _console()
    record: RunRecord | None = None
    try:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=4, transient=False) as live:

                def show(new: RunRecord) -> None:
                    live.update(LiveRun(new), refresh=True)

                record = _until_finished(client, run_id, show)
        else:
            print(f"Run {run_id}", flush=True)

            def show(new: RunRecord) -> None:
                nonlocal record
                for line in transitions(record, new):
                    print(line, flush=True)
                record = new

            final = _until_finished(client, run_id, show)
            console.print(run_view(final))
            return final
    except KeyboardInterrupt:
        print(f"stopped watching; the run goes on: stageflow watch {run_id}", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    return record


def _until_finished(client: Client, run_id: str, show: Callable[[RunRecord], None]) -> RunRecord:
    record: RunRecord | None = None
    while True:
        for event in client.events(run_id):
            record = apply(record, event)
            show(record)
        record = client.get(run_id)  # the final word, with the run's timestamps
        show(record)
        if record.status.phase.finished:
            return record


def _exit_with(record: RunRecord) -> None:
    code = EXIT_CODES.get(record.status.phase, 0)
    if code:
        raise typer.Exit(code)


@contextmanager
def _client(server: str, token: str | None) -> Iterator[Client]:
    """A client whose errors end the command with exit status 2 and a line on stderr."""
    try:
        with Client(server, token) as client:
            yield client
    except UsageError as error:
        _fail(str(error))
    except UnreachableError as error:
        _fail(f"cannot reach the API at {error} (set --server or STAGEFLOW_URL)")
    except ApiError as error:
        _fail(f"{describe(error.detail)} (HTTP {error.status_code})")


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def _console() -> Console:
    """stdout; into a file or a pipe, wide enough that a row stays on one line for grep."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, PLAIN_WIDTH)
    return console
