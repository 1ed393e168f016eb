"""A benchmark's smoke run, as tests/test_bench*.py make it: `python -m MODULE ARGS` from
the checkout, which must exit 0; its output lines, for the test to check their shape."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import ROOT


def run_bench(module: str, *args: str, timeout: float = 110) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.splitlines()
