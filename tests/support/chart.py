"""Rendering the chart with the real `helm` (from ../shared/k8s/install.sh, or PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT

CHART = ROOT / "charts" / "stageflow"
Render = Callable[..., list[dict[str, Any]]]


def helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    home = Path(os.environ.get("STAGEFLOW_K8S_HOME", Path.home() / ".cache" / "stageflow-k8s"))
    candidate = home / "bin" / "helm"
    return str(candidate) if candidate.exists() else None


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(
        f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )
