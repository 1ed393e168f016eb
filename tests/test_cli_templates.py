"""`stageflow template ...`, `stageflow schedule ...` and `stageflow submit --template` as a
user runs them: a real `stageflow` process against a real `stageflow api` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.live_api import running_api
from tests.support.polling import wait_until

GREETING: dict[str, Any] = {
    "dag": [
        {
            "name": "hello",
            "task": "echo",
            "params": {"who": "{{ params.who }}", "times": "{{ params.times }}"},
        }
    ],
    "params": {"who": {"description": "Whom to greet."}, "times": {"default": 1}},
}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running_api(None) as client:
        yield str(client.base_url).rstrip("/")


def stageflow(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stageflow.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STAGEFLOW_URL": url},
        check=False,
    )


def ok(*args: str, url: str, stdin: str | None = None) -> str:
    done = stageflow(*args, url=url, stdin=stdin)
    assert done.returncode == 0, f"stageflow {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def resource(kind: str, name: str, spec: dict[str, Any]) -> str:
    """The Kubernetes form, as `kubectl apply -f` takes it."""
    return yaml.safe_dump(
        {
            "apiVersion": "stageflow.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        },
        sort_keys=False,
    )


def row(output: str, first: str) -> list[str]:
    """The table row whose first column is `first`, split on white space."""
    rows = [line.split() for line in output.splitlines() if line.split()[:1] == [first]]
    assert len(rows) == 1, f"no single row for {first} in:\n{output}"
    return rows[0]


def test_apply_a_template_in_both_shapes_then_list_and_get_its_revisions(
    api: str, tmp_path: Path
) -> None:
    name = unique("greet")
    plain = tmp_path / "greet.json"
    plain.write_text(json.dumps({"name": name, "spec": GREETING}))
    assert ok("template", "apply", "-f", str(plain), url=api) == (
        f"template {name} created (revision 1)\n"
    )
    assert ok("template", "apply", "-f", str(plain), url=api) == (
        f"template {name} unchanged (revision 1)\n"
    )
    revised = {**GREETING, "params": {**GREETING["params"], "times": {"default": 2}}}
    kube = tmp_path / "greet.yaml"
    kube.write_text(resource("WorkflowTemplate", name, revised))
    assert ok("template", "apply", "--filename", str(kube), url=api) == (
        f"template {name} configured (revision 2)\n"
    )
    # stdin, the same file again: nothing changes
    assert ok("template", "apply", "-f", "-", url=api, stdin=kube.read_text()) == (
        f"template {name} unchanged (revision 2)\n"
    )

    listed = ok("template", "list", url=api)
    assert listed.splitlines()[0].split() == ["NAME", "REVISION", "DIGEST", "UPDATED"]
    current = json.loads(ok("template", "get", name, "-o", "json", url=api))
    digest = current["digest"].removeprefix("sha256:")
    assert row(listed, name)[1:3] == ["2", digest[:12]]

    first = json.loads(ok("template", "get", name, "--revision", "1", "-o", "json", url=api))
    assert first["revision"] == 1
    assert first["spec"]["params"]["times"] == {"default": 1}
    assert current["revision"] == 2
    assert current["revisions"] == [1, 2]
    as_yaml = yaml.safe_load(ok("template", "get", name, "-o", "yaml", url=api))
    assert as_yaml == current

    shown = ok("template", "get", name, url=api)
    assert f"Template {name}  revision 2" in shown
    assert current["digest"] in shown
    assert row(shown, "who")[1] == "(required)"
    assert row(shown, "times")[1] == "2"
    assert "task: echo" in shown


def test_submit_a_template_with_params_and_get_shows_the_runs_origin(api: str) -> None:
    name = unique("greet")
    ok("template", "apply", "-f", "-", url=api, stdin=json.dumps({"name": name, "spec": GREETING}))
    revised = {**GREETING, "name": "revised"}
    ok("template", "apply", "-f", "-", url=api, stdin=resource("WorkflowTemplate", name, revised))

    watched = stageflow(
        "submit", "--template", name, "-p", "who=ada", "-p", "times=3", "--watch", url=api
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr
    run_id = watched.stdout.split()[1]  # "Run <id>" first
    assert f"from template {name}@2" in watched.stdout
    record = json.loads(ok("get", run_id, "-o", "json", url=api))
    assert record["status"]["tasks"]["hello"]["outputs"] == {"who": "ada", "times": 3}
    assert record["origin"]["template"] == name
    assert record["origin"]["template_revision"] == 2

    run_id = ok("submit", "-t", name, "--revision", "1", "-p", "who=bo", url=api).strip()
    ok("watch", run_id, url=api)
    shown = ok("get", run_id, url=api)
    assert f"from template {name}@1" in shown
    assert "Succeeded" in row(shown, "level")  # "level 1  hello  ✓ Succeeded ..."


def test_schedule_apply_list_get_pause_resume_and_backfill(api: str, tmp_path: Path) -> None:
    template, name = unique("greet"), unique("hourly")
    ok(
        "template",
        "apply",
        "-f",
        "-",
        url=api,
        stdin=resource("WorkflowTemplate", template, GREETING),
    )
    spec = {
        "schedule": "0 * * * *",
        "timezone": "Europe/Paris",
        "templateRef": {"name": template},
        "params": {"who": "cron"},
    }
    file = tmp_path / "schedule.yaml"
    file.write_text(resource("Schedule", name, spec))
    assert ok("schedule", "apply", "-f", str(file), url=api) == f"schedule {name} created\n"
    assert ok("schedule", "apply", "-f", str(file), url=api) == f"schedule {name} unchanged\n"
    plain = tmp_path / "schedule.json"
    plain.write_text(json.dumps({"name": name, "spec": {**spec, "overlapPolicy": "AllowAll"}}))
    assert ok("schedule", "apply", "-f", str(plain), url=api) == f"schedule {name} configured\n"

    def next_known() -> bool:
        status = json.loads(ok("schedule", "get", name, "-o", "json", url=api))["status"]
        return "nextScheduledTime" in status

    wait_until(next_known)
    listed = ok("schedule", "list", url=api)
    header = ["NAME", "SCHEDULE", "TIMEZONE", "LAST", "NEXT", "ACTIVE", "SUSPENDED"]
    assert listed.splitlines()[0].split() == header
    # "0 * * * *" is five words of the row
    cells = row(listed, name)
    assert cells[1:7] == ["0", "*", "*", "*", "*", "Europe/Paris"]
    assert cells[7] == "-"  # LAST: no slot yet
    assert cells[8].endswith("m") or cells[8] == "now"  # NEXT: within the hour
    assert cells[9:] == ["0", "false"]

    shown = ok("schedule", "get", name, url=api)
    assert f"Schedule {name}  active" in shown
    assert "0 * * * * (Europe/Paris)" in shown
    assert f"template {template} (current revision)" in shown
    assert 'who="cron"' in shown
    assert "overlap AllowAll" in shown
    assert "0 fired, 0 skipped, 0 missed" in shown
    assert "Next:      20" in shown  # a time, not "-"

    assert ok("schedule", "pause", name, url=api) == f"schedule {name} paused\n"
    assert row(ok("schedule", "list", url=api), name)[-1] == "true"
    assert f"Schedule {name}  suspended" in ok("schedule", "get", name, url=api)
    assert ok("schedule", "resume", name, url=api) == f"schedule {name} resumed\n"
    assert row(ok("schedule", "list", url=api), name)[-1] == "false"

    dry = ok(
        "schedule",
        "backfill",
        name,
        "--from",
        "2024-01-01T00:00:00Z",
        "--to",
        "2024-01-01T03:00:00Z",
        "--dry-run",
        url=api,
    )
    assert dry.splitlines() == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T01:00:00Z",
        "2024-01-01T02:00:00Z",
        "3 slots (dry run: none queued)",
    ]
    fired = ok(
        "schedule",
        "backfill",
        name,
        "--from",
        "2024-01-01T00:00:00Z",
        "--to",
        "2024-01-01T02:00:00Z",
        "--overlap-policy",
        "allowall",
        url=api,
    )
    assert fired.splitlines()[-1] == "2 slots, 2 queued"

    def recent() -> list[dict[str, Any]]:
        status = json.loads(ok("schedule", "get", name, "-o", "json", url=api))["status"]
        return list(status.get("recent", []))

    wait_until(lambda: len(recent()) == 2, within=60)
    shown = ok("schedule", "get", name, url=api)
    assert "2 fired, 0 skipped, 0 missed" in shown
    assert "Recent runs:" in shown
    first = next(run for run in recent() if run["scheduledTime"].startswith("2024-01-01T00:00"))
    assert row(shown, first["runId"])[1:5] == ["2024-01-01T00:00:00Z", "✓", "Succeeded", "yes"]
    origin = ok("get", first["runId"], url=api)
    assert (
        f"from template {template}@1, schedule {name} at 2024-01-01T00:00:00Z (backfill)" in origin
    )

    assert ok("schedule", "delete", name, url=api) == f"schedule {name} deleted\n"
    assert ok("template", "delete", template, url=api) == f"template {template} deleted\n"
    gone = stageflow("schedule", "get", name, url=api)
    assert gone.returncode == 2
    assert gone.stderr.strip() == f"error: Schedule {name} not found (HTTP 404)"


@pytest.mark.parametrize(
    ("args", "stdin", "error"),
    [
        (("template", "apply", "-f", "-"), "name: [", "stdin is neither JSON nor YAML"),
        (("template", "apply", "-f", "-"), "[1, 2]", "stdin must hold one object"),
        (("template", "apply", "-f", "/no/such/file.yaml"), None, "cannot read /no/such/file"),
        (("template", "apply", "-f", "-"), '{"spec": {}}', "must hold {name, spec} or a"),
        (
            ("template", "apply", "-f", "-"),
            resource("Schedule", "x", {"schedule": "@hourly"}),
            "stdin holds a Schedule, not a WorkflowTemplate",
        ),
        (
            ("template", "apply", "-f", "-"),
            yaml.safe_dump({"apiVersion": "v1", "kind": "WorkflowTemplate"}),
            "apiVersion must be stageflow.dev/v1alpha1",
        ),
        (
            ("template", "apply", "-f", "-"),
            json.dumps({"name": "bad-task", "spec": {"dag": [{"name": "x", "task": "task_x"}]}}),
            "Unknown task: task_x",
        ),
        (
            ("schedule", "apply", "-f", "-"),
            json.dumps(
                {
                    "name": "bad-cron",
                    "spec": {"schedule": "61 * * * *", "templateRef": {"name": "x"}},
                }
            ),
            "(HTTP 4",
        ),
        (
            ("template", "get", "ghost-template"),
            None,
            "Template ghost-template not found (HTTP 404)",
        ),
        (("template", "delete", "ghost-template"), None, "not found (HTTP 404)"),
        (("submit", "--template", "ghost-template"), None, "ghost-template"),
        (("submit", "-", "--template", "x"), "{}", "give a FILE or --template, not both"),
        (("submit",), None, "give a FILE (`-` for stdin) or --template NAME"),
        (("submit", "-", "--revision", "2"), "{}", "--revision goes with --template"),
        (("schedule", "pause", "ghost-schedule"), None, "Schedule ghost-schedule not found"),
        (
            (
                "schedule",
                "backfill",
                "ghost-schedule",
                "--from",
                "2024-01-01T00:00:00Z",
                "--to",
                "2024-01-02T00:00:00Z",
            ),
            None,
            "Schedule ghost-schedule not found (HTTP 404)",
        ),
    ],
)
def test_bad_input_and_api_errors_exit_2_with_the_detail_on_stderr(
    api: str, args: tuple[str, ...], stdin: str | None, error: str
) -> None:
    done = stageflow(*args, url=api, stdin=stdin)
    assert done.returncode == 2, done.stdout + done.stderr
    assert error in done.stderr
    assert done.stdout == ""


def test_a_template_missing_a_required_param_is_refused_with_the_apis_detail(api: str) -> None:
    name = unique("greet")
    ok("template", "apply", "-f", "-", url=api, stdin=json.dumps({"name": name, "spec": GREETING}))
    done = stageflow("submit", "--template", name, url=api)  # `who` has no default
    assert done.returncode == 2
    assert "who" in done.stderr
    assert "(HTTP 400)" in done.stderr
    assert done.stdout == ""
