"""The user's CLI (`stageflow submit/get/list/watch/logs/cancel/delete/tasks`) as a user
runs it: a real `stageflow` process against a real `stageflow api` process."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest
import yaml

from tests.support.live_api import running_api
from tests.support.polling import wait_until

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled")
SEED = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}
LONG_NAP = json.dumps(
    {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "nap", "task": "sleep", "params": {"seconds": 60}}],
            }
        ]
    }
)
FAILING = """\
name: nightly
dag:
  - name: extract
    task: echo
    params: {rows: 3}
  - name: boom
    task: fail
    params: {message: disk full}
    dependsOn: [extract]
  - name: report
    task: task_c
    dependsOn: [boom]
"""


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


def line_of(output: str, task: str) -> str:
    """The last table row of `task`: its name, then a phase mark and the phase."""
    row = re.compile(rf"(^|\s){re.escape(task)}\s+\S\s+({'|'.join(PHASES)})\b")
    rows = [line for line in output.splitlines() if row.search(line)]
    assert rows, f"no row for {task} in:\n{output}"
    return rows[-1]


def test_submit_watch_of_the_seed_exits_0_and_shows_every_task_succeeded(
    api: str, tmp_path: Path
) -> None:
    body = tmp_path / "seed.json"
    body.write_text(json.dumps(SEED))
    done = stageflow("submit", str(body), "--watch", url=api)
    assert done.returncode == 0, done.stderr
    for task in ("task_a", "task_b", "task_c"):
        assert "Succeeded" in line_of(done.stdout, task)
    assert "stage 1 · parallel" in done.stdout
    assert "stage 2 · sequential" in done.stdout
    assert "3/3" in done.stdout


def test_a_failing_yaml_workflow_exits_1(api: str, tmp_path: Path) -> None:
    body = tmp_path / "failing.yaml"
    body.write_text(FAILING)
    done = stageflow("submit", str(body), "-w", url=api)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Succeeded" in line_of(done.stdout, "extract")
    assert "Failed" in line_of(done.stdout, "boom")
    assert "RuntimeError: disk full" in line_of(done.stdout, "boom")
    assert "Skipped" in line_of(done.stdout, "report")
    assert "level 3" in done.stdout


def test_yaml_on_stdin_with_params_then_watch_and_get(api: str) -> None:
    body = (
        "dag:\n"
        "  - {name: hello, task: echo, params: {who: '{{ params.who }}', n: '{{ params.n }}'}}\n"
        "params: {who: nobody, n: 0}\n"
    )
    submitted = stageflow("submit", "-", "--param", "who=ada", "-p", "n=3", url=api, stdin=body)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    assert stageflow("watch", run_id, url=api).returncode == 0
    as_json = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    assert as_json["status"]["tasks"]["hello"]["outputs"] == {"who": "ada", "n": 3}
    as_yaml = yaml.safe_load(stageflow("get", run_id, "-o", "yaml", url=api).stdout)
    assert as_yaml == as_json
    shown = stageflow("get", run_id, url=api)
    assert "Succeeded" in line_of(shown.stdout, "hello")


def test_a_cancelled_run_exits_3(api: str) -> None:
    run_id = stageflow("submit", "-", url=api, stdin=LONG_NAP).stdout.strip()
    cancelled = stageflow("cancel", run_id, url=api)
    assert cancelled.returncode == 0, cancelled.stderr
    watched = stageflow("watch", run_id, url=api)
    assert watched.returncode == 3
    assert "Cancelled" in line_of(watched.stdout, "nap")
    again = stageflow("cancel", run_id, url=api)
    assert again.returncode == 2
    assert "already finished" in again.stderr


def test_cancel_force_cancels_the_finally_tasks_and_watch_shows_them_apart(api: str) -> None:
    body = {**json.loads(LONG_NAP), "finally": [{"name": "tidy", "task": "sleep"}]}
    run_id = stageflow("submit", "-", url=api, stdin=json.dumps(body)).stdout.strip()
    assert stageflow("cancel", "--force", run_id, url=api).returncode == 0
    watched = stageflow("watch", run_id, url=api)
    assert watched.returncode == 3
    assert "Cancelled" in line_of(watched.stdout, "tidy")
    [row] = [line for line in watched.stdout.splitlines() if "tidy" in line and "finally" in line]
    assert "Cancelled" in row  # the table's own section for the finally tasks


def test_a_run_failed_at_its_third_task_is_retried_without_re_running_the_first_two(
    api: str,
) -> None:
    body = {
        "params": {"broken": True},
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    "task_a",
                    "task_b",
                    {"name": "check", "task": "fail", "when": "{{ params.broken }}"},
                    "task_c",
                ],
            }
        ],
    }
    submitted = stageflow("submit", "-", "-w", url=api, stdin=json.dumps(body))
    assert submitted.returncode == 1
    run_id = submitted.stdout.split()[1]
    before = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    refused = stageflow("retry", run_id, "--from", "nope", url=api)
    assert refused.returncode == 2
    assert "Unknown task: nope (retry from)" in refused.stderr
    retried = stageflow("retry", run_id, "-p", "broken=false", "--watch", url=api)
    assert retried.returncode == 0, retried.stderr
    assert "Succeeded" in line_of(retried.stdout, "task_c")
    after = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    for kept in ("task_a", "task_b"):
        assert after["status"]["tasks"][kept] == before["status"]["tasks"][kept]
    assert after["status"]["retries"][0]["reset"] == ["check", "task_c"]


def test_approve_and_reject(api: str) -> None:
    gated = {
        "dag": [
            {"name": "gate", "approval": {}},
            {"name": "after", "task": "task_a", "dependsOn": ["gate"]},
        ]
    }
    first = stageflow("submit", "-", url=api, stdin=json.dumps(gated)).stdout.strip()
    second = stageflow("submit", "-", url=api, stdin=json.dumps(gated)).stdout.strip()
    for run_id in (first, second):
        wait_until(
            lambda run_id=run_id: (
                '"Waiting"' in stageflow("get", run_id, "-o", "json", url=api).stdout
            )
        )
    approved = stageflow("approve", first, "gate", "-c", "ok", url=api)
    assert (approved.returncode, approved.stdout) == (0, f"{first}: gate approved\n")
    assert stageflow("watch", first, url=api).returncode == 0
    unfit = stageflow("approve", second, "gate", "-o", "v=1", url=api)
    assert unfit.returncode == 2
    assert "Task gate takes no outputs (its approval has no inputs)" in unfit.stderr
    assert stageflow("reject", second, "gate", "-c", "no", url=api).returncode == 0
    watched = stageflow("watch", second, url=api)
    assert watched.returncode == 1
    assert "rejected: no" in line_of(watched.stdout, "gate")


def test_suspend_and_resume(api: str) -> None:
    run_id = stageflow("submit", "-", url=api, stdin=LONG_NAP).stdout.strip()
    suspended = stageflow("suspend", run_id, url=api)
    assert (suspended.returncode, suspended.stdout) == (0, f"{run_id}: suspend requested\n")
    shown = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    assert shown["status"]["suspended"] is True
    assert stageflow("resume", run_id, url=api).returncode == 0
    shown = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    assert "suspended" not in shown["status"]
    assert stageflow("cancel", run_id, url=api).returncode == 0


def test_list_logs_tasks_and_delete(api: str) -> None:
    named = {**SEED, "name": "listed"}
    run_id = stageflow("submit", "-", "-w", url=api, stdin=json.dumps(named)).stdout.split()[1]
    listed = stageflow("list", "--phase", "succeeded", url=api)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "PHASE", "PROGRESS", "AGE"]
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert row.split()[1:5] == ["listed", "✓", "Succeeded", "3/3"]
    assert len(stageflow("list", "--limit", "1", url=api).stdout.splitlines()) == 2
    assert run_id not in stageflow("list", "--phase", "Failed", url=api).stdout
    assert "Running task A" in stageflow("logs", run_id, "task_a", url=api).stdout
    tasks = stageflow("tasks", url=api).stdout
    assert ["sleep", "seconds"] in [line.split()[:2] for line in tasks.splitlines()]
    assert stageflow("delete", run_id, url=api).returncode == 0
    gone = stageflow("get", run_id, url=api)
    assert gone.returncode == 2
    assert gone.stderr.strip() == "error: Workflow not found (HTTP 404)"


@pytest.mark.parametrize(
    ("args", "stdin", "error"),
    [
        (
            ("submit", "-"),
            '{"workflow": [{"type": "parallel", "tasks": ["task_x"]}]}',
            "error: Unknown task: task_x (HTTP 400)",
        ),
        (("submit", "-"), '{"dag": []}', "body.dag: List should have at least 1 item"),
        (("submit", "-"), "[1, 2]", "stdin must hold one object"),
        (("submit", "-"), "a: [", "stdin is neither JSON nor YAML"),
        (("submit", "/no/such/file.yaml"), None, "cannot read /no/such/file.yaml"),
        (("submit", "-", "-p", "novalue"), "{}", "--param takes KEY=VALUE"),
        (("list", "--phase", "Sideways"), None, "Sideways"),
        (("list", "--server", "http://127.0.0.1:1"), None, "cannot reach the API"),
    ],
)
def test_bad_usage_and_api_errors_exit_2_on_stderr(
    api: str, args: tuple[str, ...], stdin: str | None, error: str
) -> None:
    done = stageflow(*args, url=api, stdin=stdin)
    assert done.returncode == 2
    assert error in done.stderr
    assert done.stdout == ""


def complete(words: str, url: str) -> list[str]:
    """What the shell completion offers for the last of `words` (bash's protocol)."""
    env = {
        **os.environ,
        "_STAGEFLOW_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
        "STAGEFLOW_URL": url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "stageflow.cli"], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.split()


def test_version_and_shell_completion_of_commands_and_run_ids(api: str) -> None:
    assert stageflow("--version", url=api).stdout.strip() == "stageflow 0.1.0"
    assert complete("stageflow su", api) == ["submit", "suspend"]
    assert complete("stageflow sub", api) == ["submit"]
    run_id = stageflow("submit", "-", url=api, stdin=json.dumps(SEED)).stdout.strip()
    assert complete(f"stageflow get {run_id[:8]}", api) == [run_id]
    assert complete("stageflow get x", "http://127.0.0.1:1") == []  # no server: no offers


def run_on_a_terminal(
    args: list[str], *, env: dict[str, str], columns: int = 120, rows: int = 40
) -> tuple[int, list[bytes]]:
    """Run a command with a pty as its terminal; return its exit status and what it wrote,
    chunk by chunk as it came."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=10), chunks


def test_the_live_view_redraws_in_place_on_a_terminal(api: str, tmp_path: Path) -> None:
    naps = [{"name": f"nap{i}", "task": "sleep", "params": {"seconds": 0.8}} for i in range(3)]
    body = tmp_path / "naps.json"
    body.write_text(json.dumps({"workflow": [{"type": "sequential", "tasks": naps}]}))
    env = {**os.environ, "STAGEFLOW_URL": api, "TERM": "xterm-256color"}
    for name in ("COLUMNS", "LINES", "NO_COLOR", "CI"):
        env.pop(name, None)
    status, chunks = run_on_a_terminal(
        [sys.executable, "-m", "stageflow.cli", "submit", str(body), "--watch"], env=env
    )
    screen = pyte.Screen(120, 40)
    stream = pyte.ByteStream(screen)
    frames: list[list[str]] = []
    for chunk in chunks:
        stream.feed(chunk)
        frames.append(list(screen.display))

    def row(frame: list[str], task: str) -> str:
        found = [line for line in frame if f" {task} " in line]
        assert len(found) <= 1, f"{task} drawn twice: the view did not redraw in place"
        return found[0] if found else ""

    assert status == 0, "\n".join(frames[-1] if frames else [])
    assert any(
        "Running" in row(frame, "nap1") and "Pending" in row(frame, "nap2") for frame in frames
    ), "no frame showed the run in progress"
    final = frames[-1]
    for task in ("nap0", "nap1", "nap2"):
        assert "Succeeded" in row(final, task)
    assert any("3/3" in line and "Succeeded" in line for line in final)


def test_ctrl_c_stops_watching_not_the_run(api: str) -> None:
    run_id = stageflow("submit", "-", url=api, stdin=LONG_NAP).stdout.strip()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "stageflow.cli", "watch", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STAGEFLOW_URL": api},
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == f"Run {run_id}"  # it is watching
    watcher.send_signal(signal.SIGINT)
    _, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 130
    assert f"stageflow watch {run_id}" in stderr
    still = json.loads(stageflow("get", run_id, "-o", "json", url=api).stdout)
    assert still["status"]["phase"] in ("Pending", "Running")
    assert stageflow("cancel", run_id, url=api).returncode == 0
