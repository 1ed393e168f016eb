"""Rendering the chart with the real `helm` (from ../shared/k8s/install.sh, or PATH)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.chart import CHART, Render, helm_binary, run_helm


@pytest.fixture(scope="session")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("no helm: run ../shared/k8s/install.sh (it installs helm)")
    return binary


@pytest.fixture
def render(helm: str) -> Render:
    def render(*settings: str, crds: bool = False) -> list[dict[str, Any]]:
        args = ["template", "sf", str(CHART), "--namespace", "flows"]
        if crds:
            args.append("--include-crds")
        for setting in settings:
            args += ["--set", setting]
        done = run_helm(helm, *args)
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    return render
