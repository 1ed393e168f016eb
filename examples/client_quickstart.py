"""The Python client in a dozen lines: build a workflow, submit it, follow it, read it back.

Run against a server (`make run` in another terminal):
    STAGEFLOW_URL=http://127.0.0.1:8080 .venv/bin/python examples/client_quickstart.py
"""

from __future__ import annotations

import os

from stageflow.client import ApiError, Client, Dag, RunEvent, Task


def main() -> None:
    extract = Task("extract", "echo", params={"rows": 3})
    wait = Task("wait", "sleep", params={"seconds": 0.5})
    check = Task("check", "echo", params={"rows": extract.output("rows")})
    report = Task("report", "task_c")
    [extract, wait] >> check >> report

    with Client(os.environ.get("STAGEFLOW_URL", "http://127.0.0.1:8080")) as client:
        run = client.submit(Dag(report, name="nightly"))
        print("submitted", run.run_id, run.status)
        for event in client.events(run.run_id):
            if isinstance(event, RunEvent):
                moved = ", ".join(f"{name} {task.phase}" for name, task in event.tasks.items())
                print(f"  {event.progress:>4}  {moved}")
        record = client.wait(run.run_id, timeout=60)
        print(
            "finished",
            record.status.phase,
            "outputs of check:",
            record.status.tasks["check"].outputs,
        )
        print(
            "status",
            " ".join(f"{name}={phase}" for name, phase in client.status(run.run_id).items()),
        )
        print("newest", [summary.name for summary in client.list(limit=3)])
        try:
            client.submit({"workflow": [{"type": "parallel", "tasks": ["task_x"]}]})
        except ApiError as error:
            print("refused", error.status_code, error.detail)


if __name__ == "__main__":
    main()
