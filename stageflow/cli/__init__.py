"""The `stageflow` command.

Running stageflow: `api` serves the HTTP API, `operator` reconciles WorkflowRuns,
`task run`/`task list` run tasks in this process (a Job task's container runs
`stageflow task run`). Using it: `submit`, `get`, `list`, `watch`, `logs`, `cancel`,
`retry`, `approve`, `reject`, `suspend`, `resume`, `delete`, `tasks`, and the `template` and
`schedule` groups talk to the API through `stageflow.client`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

import stageflow
from stageflow.cli import catalog, runs, server

app = typer.Typer(
    name="stageflow",
    help="A Kubernetes-native workflow engine: run it (api, operator, task) and use it "
    "(submit, get, list, watch, logs, cancel, retry, approve, reject, suspend, resume, delete, "
    "tasks, template, schedule).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"stageflow {stageflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """stageflow: workflows of parallel and sequential stages, or a DAG."""


app.command()(server.api)
app.command()(server.operator)
app.add_typer(server.task_app)
for name, command in runs.COMMANDS.items():
    app.command(name)(command)
app.add_typer(catalog.template_app)
app.add_typer(catalog.schedule_app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status (0 ok, 1 failed, 2 usage, 3 cancelled)."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="stageflow")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0
