"""The Dockerfile, read as a reviewer would (no Docker daemon here to build it)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINES = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
STAGES = [i for i, line in enumerate(LINES) if line.startswith("FROM ")]
FINAL = LINES[STAGES[-1] :]


def test_multi_stage_from_a_slim_python() -> None:
    assert len(STAGES) >= 2
    for index in STAGES:
        assert re.match(r"FROM python:3\.11-slim\b", LINES[index]), LINES[index]


def test_no_compilers_in_the_final_image() -> None:
    final = "\n".join(FINAL)
    for tool in ("gcc", "build-essential", "apt-get install", "g++", "make "):
        assert tool not in final, tool
    assert "COPY --from=build /wheels" in final


def test_the_image_installs_the_runtime_lock_with_hashes() -> None:
    """What the image runs is what the tests ran with: the runtime lock, hashes checked,
    offline in the final stage, and nothing resolved at build time."""
    text = "\n".join(LINES)
    assert "-r requirements/runtime.txt" in text
    final = "\n".join(FINAL)
    assert "--require-hashes" in final
    assert "--no-index" in final
    assert "-r /tmp/runtime.txt" in final
    assert "pip check" in final
    assert "--upgrade pip" not in text


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [line.split()[1] for line in FINAL if line.startswith("USER ")]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) > 0


def test_stageflow_is_the_entrypoint_and_api_the_default() -> None:
    assert 'ENTRYPOINT ["stageflow"]' in FINAL
    assert 'CMD ["api"]' in FINAL


def test_listening_on_every_interface_the_image_names_an_auth_mode() -> None:
    """Issue 11: STAGEFLOW_HOST=0.0.0.0 without STAGEFLOW_AUTH_MODE would not start."""
    final = "\n".join(FINAL)
    assert "STAGEFLOW_HOST=0.0.0.0" in final
    assert "STAGEFLOW_AUTH_MODE=kubernetes" in final


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_the_wheel_the_image_installs_has_every_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # the locked setuptools of .venv, as the image builds it
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("stageflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "stageflow/store/lua/write_run.lua" in names
    for module in (
        "stageflow/cli/__init__.py",
        "stageflow/client/sync.py",
        "stageflow/engine/runner.py",
        "stageflow/api/main.py",
        "stageflow/operator/main.py",
        "stageflow/kube/jobs.py",
        "stageflow/store/redis_store.py",
        "stageflow/store/redis_mirror.py",
        "stageflow/store/keys.py",
        # Package data: the store's Lua scripts, every one (store/scripts.py reads them).
        *sorted(f"stageflow/store/lua/{lua.name}" for lua in (ROOT / "store/lua").glob("*.lua")),
    ):
        assert module in names, module
    assert "stageflow/operator/__init__.py" not in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "stageflow = stageflow.cli:main" in text
    assert "[stageflow.tasks]" in text
