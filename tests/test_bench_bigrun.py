"""The big-run benchmark keeps running as the code changes: a smoke run at tiny sizes on the
real apiserver (its figures come from `python -m bench.bigrun`, never from an assertion
here). Skips without a cluster, as the e2e tier does."""

from __future__ import annotations

import os

import pytest

from tests.support.bench import run_bench
from tests.support.cluster import NO_CLUSTER

pytestmark = pytest.mark.e2e


def test_the_big_run_benchmark_runs_each_size_to_the_end() -> None:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip(NO_CLUSTER)
    lines = run_bench("bench.bigrun", "--quick")
    assert lines[0].startswith("stageflow at "), lines
    rows = [line.split() for line in lines[2:4]]
    assert [row[:2] for row in rows] == [["20", "Succeeded"], ["50", "Succeeded"]], lines
    assert any(line.startswith("per instance, against 20 instances") for line in lines), lines
    assert lines[-1].startswith("engine alone, 50 no-op instances in "), lines
