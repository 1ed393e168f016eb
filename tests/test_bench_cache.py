"""The cache benchmark keeps running as the code changes: a smoke run at a tiny size (its
figures come from `python -m bench.cache`, never from an assertion here)."""

from __future__ import annotations

from tests.support.bench import run_bench

SMALL = ["--tasks", "4", "--width", "2", "--work", "0", "--rounds", "1"]


def test_the_cache_benchmark_runs_and_its_second_run_executes_nothing() -> None:
    lines = run_bench("bench.cache", *SMALL)
    assert "   4 task executions" in lines[2]
    assert "   0 task executions   (4 tasks cached)" in lines[3], lines
    assert lines[4].split()[:3] == ["ratio", "first", "/"]
