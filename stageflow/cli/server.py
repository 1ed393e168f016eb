"""The commands that run stageflow itself: `api` serves the HTTP API, `operator` reconciles
WorkflowRuns, `task run` runs one task here, `task list` lists what this install can run.

The Dockerfile, the Helm chart and Job pods call these, so their arguments, output and
exit codes stay as they were: `task run` exits 0 when the task succeeded, 1 when it
failed (the reason on stderr), 2 for bad usage. Each imports its layer lazily, so
`stageflow task run` stays quick.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Annotated, NoReturn

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_JOB_OUTPUT_BYTES = 4096  # Kubernetes keeps at most 4 KiB of a termination message

task_app = typer.Typer(
    name="task", help="Registered tasks, run in this process.", no_args_is_help=True
)


def api(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: STAGEFLOW_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: STAGEFLOW_PORT or 8080).")
    ] = None,
) -> None:
    """Serve the HTTP API."""
    from stageflow import logs
    from stageflow.api import create_app
    from stageflow.api.auth import AuthConfigError
    from stageflow.api.config import ApiSettings
    from stageflow.api.server import make_server

    settings = ApiSettings()
    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value}
    settings = settings.model_copy(update=overrides)
    logs.configure(level=settings.log_level.upper())  # uvicorn's loggers propagate to it
    try:
        app = create_app(settings)
    except AuthConfigError as error:  # e.g. every interface and no auth mode chosen
        _fail(f"stageflow api: {error}", EXIT_USAGE)
    make_server(app, settings, log_config=None).run()


def operator() -> None:
    """Run the kopf operator that reconciles WorkflowRuns."""
    from stageflow.operator.main import run

    run()


def _load_registry() -> None:
    from stageflow.engine import registry
    from stageflow.engine.config import EngineSettings

    registry.load(EngineSettings().task_modules)


@task_app.command("list")
def list_tasks() -> None:
    """List the tasks this install can run (the built-ins and STAGEFLOW_TASK_MODULES)."""
    from stageflow.engine import registry

    _load_registry()
    for definition in registry:
        print(f"{definition.name:16} {definition.description}")


@task_app.command("run")
def run_task(
    name: Annotated[str, typer.Argument(help="The registered task.")],
    params: Annotated[str, typer.Option(help="The task's params as a JSON object.")] = "{}",
) -> None:
    """Run one registered task in this process (what a Job task's container does)."""
    from stageflow.engine import registry
    from stageflow.engine.inprocess import call

    _load_registry()
    definition = registry.get(name)
    if definition is None:
        _fail(f"Unknown task: {name}", EXIT_USAGE)
    try:
        values = json.loads(params)
    except json.JSONDecodeError as error:
        _fail(f"--params is not JSON: {error}", EXIT_USAGE)
    if not isinstance(values, dict):
        _fail("--params must be a JSON object", EXIT_USAGE)
    result = asyncio.run(call(definition, values))
    if not result.ok:
        message = result.message or "failed"
        _write_termination_message(message)  # in a Job: why it failed, for the task's status
        _fail(message, EXIT_FAILED)
    if result.outputs is not None:
        _write_outputs(result.outputs)


def _write_outputs(outputs: object) -> None:
    """Print the outputs; in a Job, also write them where the operator reads them back
    (STAGEFLOW_OUTPUTS_FILE: the container's termination message, at most 4 KiB)."""
    text = json.dumps(outputs, separators=(",", ":"))
    print(text)
    if os.environ.get("STAGEFLOW_OUTPUTS_FILE") and len(text.encode()) > MAX_JOB_OUTPUT_BYTES:
        message = (
            f"outputs are {len(text.encode())} bytes; a Job task's are at most "
            f"{MAX_JOB_OUTPUT_BYTES} (they travel in its termination message)"
        )
        _write_termination_message(message)
        _fail(message, EXIT_FAILED)
    _write_termination_message(text)


def _write_termination_message(text: str) -> None:
    """In a Job (STAGEFLOW_OUTPUTS_FILE set), the container's termination message: what the
    operator reads back, outputs on success and the reason on failure (4 KiB at most)."""
    target = os.environ.get("STAGEFLOW_OUTPUTS_FILE")
    if not target:
        return
    data = text.encode()
    if len(data) > MAX_JOB_OUTPUT_BYTES:  # only a failure's message is that long: keep its end
        data = data[-MAX_JOB_OUTPUT_BYTES:].decode(errors="ignore").encode()
    with open(target, "wb") as file:
        file.write(data)


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    raise typer.Exit(code)
