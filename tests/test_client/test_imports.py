"""`stageflow.client` needs only the models layer, httpx and pydantic: a program that talks to
the API installs none of the server's dependencies. Shown in a fresh interpreter in which
every other runtime dependency of stageflow cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# What the client is allowed to need (and what those need in turn).
CLIENT_NEEDS = {"pydantic", "httpx", "httpx-sse", "typing-extensions"}
# Import names of distributions whose import name differs from the distribution's.
IMPORT_NAMES = {
    "cel-python": "celpy",
    "pyyaml": "yaml",
    "prometheus-client": "prometheus_client",
    "pydantic-settings": "pydantic_settings",
}

PROBE = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed here)")
        return None

sys.meta_path.insert(0, Absent())
import stageflow.client as client

first, second = client.Task("a", "task_a"), client.Task("b", "echo")
first >> second
request = client.Dag(first, second).request()
assert request.dag is not None and [t.name for t in request.dag] == ["a", "b"], request
with client.Client("http://127.0.0.1:9", timeout=1) as api:
    try:
        api.get("3f2b8c1e-5d4a-4f7b-9c2e-8a1d6e0b4c3f")
    except client.UnreachableError:
        pass
loaded = sorted(BLOCKED & {name.split(".")[0] for name in sys.modules})
assert not loaded, loaded
print("ok")
"""


def server_only_imports() -> set[str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {Requirement(spec).name.lower() for spec in dependencies} - CLIENT_NEEDS
    return {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in names}


def test_the_client_imports_without_any_server_dependency() -> None:
    blocked = server_only_imports()
    assert {"redis", "celpy", "kubernetes", "kopf", "fastapi"} <= blocked
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(blocked | {"starlette"}))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
