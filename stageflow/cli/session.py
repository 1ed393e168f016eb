"""What the user's commands share: a client whose errors end the command (exit status 2,
a line on stderr), the console, and following a run until it ends.

Imported only when a user command runs, so `stageflow task run` (a Job's command)
does not load the HTTP client or rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.live import Live

from stageflow.cli.inputs import UsageError
from stageflow.cli.view import EXIT_CODES, LiveRun, run_view, transitions
from stageflow.client import ApiError, Client, RunRecord, UnreachableError, apply
from stageflow.client.errors import describe

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PLAIN_WIDTH = 160


@contextmanager
def connect(server: str, token: str | None) -> Iterator[Client]:
    """A client whose errors (and bad input) end the command: exit status 2, stderr."""
    try:
        with Client(server, token) as client:
            yield client
    except UsageError as error:
        fail(str(error))
    except UnreachableError as error:
        fail(f"cannot reach the API at {error} (set --server or STAGEFLOW_URL)")
    except ApiError as error:
        fail(f"{describe(error.detail)} (HTTP {error.status_code})")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def console() -> Console:
    """stdout; into a file or a pipe, wide enough that a row stays on one line for grep."""
    found = Console(highlight=False)
    if not found.is_terminal:
        found.width = max(found.width, PLAIN_WIDTH)
    return found


def follow_to_the_end(client: Client, run_id: str) -> NoReturn:
    """Show the run until it ends, then exit with its status: 0 Succeeded, 1 Failed,
    3 Cancelled (130 when the user stops watching with Ctrl-C)."""
    record = _follow(client, run_id)
    raise typer.Exit(EXIT_CODES.get(record.status.phase, 0))


def _follow(client: Client, run_id: str) -> RunRecord:
    """Show the run until it ends: redrawn in place on a terminal, else a line per change
    and the whole run at the end. Returns the finished run."""
    output = console()
    record: RunRecord | None = None
    try:
        if output.is_terminal:
            with Live(console=output, refresh_per_second=4, transient=False) as live:

                def show(new: RunRecord) -> None:
                    live.update(LiveRun(new))  # drawn at 4 Hz: a burst of events costs one frame

                record = _until_finished(client, run_id, show)
        else:
            print(f"Run {run_id}", flush=True)

            def show(new: RunRecord) -> None:
                nonlocal record
                for line in transitions(record, new):
                    print(line, flush=True)
                record = new

            final = _until_finished(client, run_id, show)
            output.print(run_view(final))
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
