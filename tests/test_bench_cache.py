"""The cache benchmark keeps running as the code changes: a smoke run at a tiny size (its
figures come from `python -m bench.cache`, never from an assertion here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--tasks", "4", "--width", "2", "--work", "0", "--rounds", "1"]


def test_the_cache_benchmark_runs_and_its_second_run_executes_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cache", *SMALL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "   4 task executions" in lines[2]
    assert "   0 task executions   (4 tasks cached)" in lines[3], lines
    assert lines[4].split()[:3] == ["ratio", "first", "/"]
