"""`stageflow task run`: its exit code is the task's result (a Job's container relies on it)."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stageflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stageflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_success_exits_0_and_prints_outputs() -> None:
    done = stageflow("task", "run", "echo", "--params", '{"rows": 3}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rows": 3}


def test_failure_exits_1_with_the_reason_on_stderr(tmp_path: Path) -> None:
    target = tmp_path / "termination-log"
    done = stageflow(
        "task",
        "run",
        "fail",
        "--params",
        '{"message": "bad input"}',
        env={"STAGEFLOW_OUTPUTS_FILE": str(target)},
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "RuntimeError: bad input"
    assert target.read_text() == "RuntimeError: bad input"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("task", "run", "ghost"), "Unknown task: ghost"),
        (("task", "run", "echo", "--params", "{oops"), "--params is not JSON"),
        (("task", "run", "echo", "--params", "[1]"), "--params must be a JSON object"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...], error: str) -> None:
    done = stageflow(*args)
    assert done.returncode == 2
    assert error in done.stderr


def test_task_list_includes_user_modules() -> None:
    done = stageflow("task", "list", env={"STAGEFLOW_TASK_MODULES": "tests.fixtures.extra_tasks"})
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert "task_a" in names
    assert "extra_greet" in names


def test_task_run_does_not_load_the_user_commands_client() -> None:
    """A Job's container runs `stageflow task run`: it starts without the HTTP client,
    rich or YAML (the user's commands import them when they run)."""
    probe = (
        "import sys, stageflow.cli; "
        "print(sorted(m for m in ('stageflow.client', 'httpx', 'rich', 'yaml') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def _operator_imported_from(root: Path) -> Path:
    """Which `operator` a Python started in `root` imports, as `python -m pytest` there would.

    It runs with `-S`: with site (and the venv's .pth files) CPython has `operator` in
    sys.modules before the current directory is on sys.path, so a shadowing package would go
    unnoticed (the flaw of the guard this replaces).
    """
    probe = (
        "import sys; assert 'operator' not in sys.modules, 'imported at start-up';"
        "import operator; print(operator.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(done.stdout.strip())


STDLIB = Path(operator.__file__).parent


def test_stdlib_operator_is_not_shadowed_from_the_repo_root() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists(), "it shadows the stdlib's operator"
    assert _operator_imported_from(ROOT).parent == STDLIB


def test_the_guard_fails_with_an_operator_package_at_the_root(tmp_path: Path) -> None:
    """Both checks of the guard above fire on a copy of the layout that has the file."""
    (tmp_path / "operator").mkdir()
    (tmp_path / "operator" / "__init__.py").write_text("")
    assert _operator_imported_from(tmp_path) == tmp_path / "operator" / "__init__.py"
    assert _operator_imported_from(tmp_path).parent != STDLIB


def test_outputs_go_to_the_file_a_job_reads_back(tmp_path: Path) -> None:
    target = tmp_path / "termination-log"
    done = stageflow(
        "task",
        "run",
        "echo",
        "--params",
        '{"rows": 3}',
        env={"STAGEFLOW_OUTPUTS_FILE": str(target)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(target.read_text()) == {"rows": 3}


def test_outputs_too_large_for_a_termination_message_fail(tmp_path: Path) -> None:
    target = tmp_path / "termination-log"
    params = json.dumps({"blob": "x" * 5000})
    done = stageflow(
        "task", "run", "echo", "--params", params, env={"STAGEFLOW_OUTPUTS_FILE": str(target)}
    )
    assert done.returncode == 1
    assert "a Job task's are at most 4096" in done.stderr
    assert "a Job task's are at most 4096" in target.read_text()  # why, for the task's status


def test_a_failure_writes_its_reason_where_a_job_reads_it_back(tmp_path: Path) -> None:
    target = tmp_path / "termination-log"
    done = stageflow(
        "task",
        "run",
        "fail",
        "--params",
        json.dumps({"message": "the disk is full " + "!" * 5000}),
        env={"STAGEFLOW_OUTPUTS_FILE": str(target)},
    )
    assert done.returncode == 1
    written = target.read_bytes()
    assert len(written) <= 4096  # what Kubernetes keeps of a termination message
    assert written.endswith(b"!!!")  # the end of the message: where an error says most
