"""The engine benchmark keeps running as the request schema changes (it once built a stage
the schema refuses and ended in a traceback). A smoke run at a tiny size, not a timing:
figures come from `make bench`, never from an assertion here."""

from __future__ import annotations

from tests.support.bench import run_bench


def test_the_engine_benchmark_runs_every_scenario() -> None:
    lines = run_bench("bench", "--quick")
    assert [line.split("  ")[0] for line in lines] == [
        "10 no-op tasks, one parallel stage",
        "1005 no-op tasks, one parallel stage",
        "5 no-op tasks, one sequential stage",
        "4 parallel sleep(0.01s) tasks",
        "peak memory, 10 parallel no-op tasks",
    ]
    assert all(" ratio " in line for line in lines), lines
