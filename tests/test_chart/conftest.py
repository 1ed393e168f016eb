"""Rendering the chart with the real `helm` (from ../shared/k8s/install.sh, or PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stageflow"
Render = Callable[..., list[dict[str, Any]]]


def helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    home = Path(os.environ.get("STAGEFLOW_K8S_HOME", Path.home() / ".cache" / "stageflow-k8s"))
    candidate = home / "bin" / "helm"
    return str(candidate) if candidate.exists() else None


@pytest.fixture(scope="session")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("no helm: run ../shared/k8s/install.sh (it installs helm)")
    return binary


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


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


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(
        f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )
