"""The `stageflow` command: `api` serves the HTTP API, `operator` reconciles WorkflowRuns,
`task run` runs one task here.

`task run` is also what a Job task's container executes, so its exit code is the
task's result: 0 succeeded, 1 failed (the reason on stderr), 2 bad usage.
Subcommands import their layer lazily, so `stageflow task run` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_JOB_OUTPUT_BYTES = 4096  # Kubernetes keeps at most 4 KiB of a termination message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stageflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", help="address to bind (default: STAGEFLOW_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: STAGEFLOW_PORT or 8080)")

    commands.add_parser("operator", help="run the kopf operator that reconciles WorkflowRuns")

    task = commands.add_parser("task", help="registered tasks")
    task_commands = task.add_subparsers(dest="task_command", required=True)
    run = task_commands.add_parser("run", help="run one registered task in this process")
    run.add_argument("name")
    run.add_argument("--params", default="{}", help="the task's params as a JSON object")
    task_commands.add_parser("list", help="list registered tasks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "api":
        return _serve_api(args.host, args.port)
    if args.command == "operator":
        from stageflow.operator.main import run

        run()
        return EXIT_OK
    if args.task_command == "list":
        return _list_tasks()
    return _run_task(args.name, args.params)


def _serve_api(host: str | None, port: int | None) -> int:
    import uvicorn

    from stageflow import logs
    from stageflow.api import create_app
    from stageflow.api.config import ApiSettings

    settings = ApiSettings()
    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value}
    settings = settings.model_copy(update=overrides)
    logs.configure(level=settings.log_level.upper())  # uvicorn's loggers propagate to it
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
    )
    return EXIT_OK


def _load_registry() -> None:
    from stageflow.engine import registry
    from stageflow.engine.config import EngineSettings

    registry.load(EngineSettings().task_modules)


def _list_tasks() -> int:
    from stageflow.engine import registry

    _load_registry()
    for definition in registry:
        print(f"{definition.name:16} {definition.description}")
    return EXIT_OK


def _run_task(name: str, params_json: str) -> int:
    from stageflow.engine import registry
    from stageflow.engine.inprocess import call

    _load_registry()
    definition = registry.get(name)
    if definition is None:
        print(f"Unknown task: {name}", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as error:
        print(f"--params is not JSON: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(params, dict):
        print("--params must be a JSON object", file=sys.stderr)
        return EXIT_USAGE
    result = asyncio.run(call(definition, params))
    if not result.ok:
        print(result.message, file=sys.stderr)
        return EXIT_FAILED
    if result.outputs is not None:
        return _write_outputs(result.outputs)
    return EXIT_OK


def _write_outputs(outputs: object) -> int:
    """Print the outputs; in a Job, also write them where the operator reads them back
    (STAGEFLOW_OUTPUTS_FILE: the container's termination message, at most 4 KiB)."""
    text = json.dumps(outputs, separators=(",", ":"))
    print(text)
    target = os.environ.get("STAGEFLOW_OUTPUTS_FILE")
    if target:
        if len(text.encode()) > MAX_JOB_OUTPUT_BYTES:
            print(
                f"outputs are {len(text.encode())} bytes; a Job task's are at most "
                f"{MAX_JOB_OUTPUT_BYTES} (they travel in its termination message)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        with open(target, "w", encoding="utf-8") as file:
            file.write(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
