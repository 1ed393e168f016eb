"""The node tier: the chart installed on a real node where pods run, used through its Service.

The node comes from ../shared/k8s/node/ (kubelet, containerd, cluster DNS, our image
built from the checkout's Dockerfile, no registry): `make node-up` brings it up and
`.ci/run` does so before the tests. Everything the product does here it does with its
own service accounts from inside its pods; the admin kubeconfig only installs the
chart (as a user would) and reads what happened, never plays a part of the cluster.

Without the node every test here skips and names the command that brings it up; with
STAGEFLOW_NODE_KUBECONFIG set but the node unreachable they fail (CI always gives one).
The fixtures (the node, the release, the example's image) are in tests/node/conftest.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import ROOT

NODE_RUN = Path(os.environ.get("STAGEFLOW_NODE_RUN", "/tmp/stageflow-node"))
NODE_SCRIPTS = Path(
    os.environ.get("STAGEFLOW_NODE_SCRIPTS", ROOT.parent / "shared" / "k8s" / "node")
)
NO_NODE = (
    "no node where pods run: run `make node-up` (../shared/k8s/install.sh, then "
    "../shared/k8s/node/install.sh, image-base.sh, image-app.sh ., up.sh; as root)"
)
NAMESPACE = "stageflow"
ALLOWED_IMAGES = "python:3.11-slim"  # what a task may name besides the task image
RELEASE = "stageflow"
APP_IMAGE = "docker.io/library/stageflow:0.1.0"  # what image-app.sh builds from the checkout
EXAMPLE_IMAGE = "docker.io/library/stageflow-data-quality:0.1.0"
REPORT: list[str] = []  # what the tier saw, printed at the end of the session (CI's log)


def note(line: str) -> None:
    REPORT.append(line)


@dataclass
class Node:
    """kubectl and helm against the node's apiserver (never the e2e control plane's)."""

    kubeconfig: str
    helm_binary: str

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> str:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.helm_binary, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", NAMESPACE] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = self.json(*args)["items"]
        return items


def ready(obj: dict[str, Any]) -> bool:
    """A pod's or a node's Ready condition."""
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_for(check: Any, *, within: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check()` until it returns something truthy, bounded by `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {within:.0f}s")
        time.sleep(interval)


USER_ACCOUNT = "node-tier-user"
USER_RBAC = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {USER_ACCOUNT}, namespace: {NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {USER_ACCOUNT}, namespace: {NAMESPACE}}}
rules:
  - apiGroups: [stageflow.dev]
    resources: [workflowruns]
    verbs: [create, get, list, watch, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {USER_ACCOUNT}, namespace: {NAMESPACE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {USER_ACCOUNT}}}
subjects: [{{kind: ServiceAccount, name: {USER_ACCOUNT}, namespace: {NAMESPACE}}}]
"""


def user_token(node: Node) -> str:
    """A user of stageflow, as the chart's default auth mode (`kubernetes`) expects one: a
    service account with a Role on workflowruns, and its token (v1.20 keeps it in a Secret;
    newer clusters: `kubectl create token`)."""
    node.kubectl("apply", "-f", "-", stdin=USER_RBAC)

    def token() -> str | None:
        for secret in node.json("get", "secrets", "-n", NAMESPACE)["items"]:
            annotations = secret["metadata"].get("annotations") or {}
            if (
                secret.get("type") == "kubernetes.io/service-account-token"
                and annotations.get("kubernetes.io/service-account.name") == USER_ACCOUNT
            ):
                return base64.b64decode(secret["data"]["token"]).decode()
        return None

    found: str = wait_for(token, within=60, what="the user's service-account token")
    return found


@dataclass
class PortForward:
    """`kubectl port-forward svc/…` to the API's Service: the way a user reaches it."""

    node: Node
    token: str = ""
    process: subprocess.Popen[str] | None = None
    client: httpx.Client | None = None
    restarts: int = field(default=0)

    def start(self) -> httpx.Client:
        self.stop()
        self.process = subprocess.Popen(
            [
                "kubectl",
                f"--kubeconfig={self.node.kubeconfig}",
                "-n",
                NAMESPACE,
                "port-forward",
                f"svc/{RELEASE}-api",
                ":80",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward said: {line!r}"
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{match.group(1)}",
            timeout=30,
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
        )
        wait_for(self._healthy, within=30, what="the API through port-forward")
        return self.client

    def _healthy(self) -> bool:
        assert self.client is not None
        with contextlib.suppress(httpx.TransportError):
            return self.client.get("/readyz").status_code == 200
        return False

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


def install_seconds(node: Node, *args: str) -> float:
    """`helm install|upgrade … --wait`, timed; fails with helm's own words."""
    started = time.monotonic()
    done = node.helm(*args, "--wait", "--timeout", "300s")
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - started


def pods_ready_seconds(node: Node, started: float, *, expected: int) -> float:
    """Wait until the release's `expected` pods are all Ready (old ones gone); seconds since
    `started`. Each pod is noted with its image and when it became Ready."""

    def all_ready() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in node.pods(f"app.kubernetes.io/instance={RELEASE}")
            if p["metadata"]["labels"].get("app.kubernetes.io/component") != "test"
        ]
        if any(p["metadata"].get("deletionTimestamp") for p in pods):
            return None  # an old operator may still lead (and run runs) until it is gone
        return pods if len(pods) == expected and all(ready(p) for p in pods) else None

    pods = wait_for(all_ready, within=300, what=f"{expected} Ready pods")
    elapsed = time.monotonic() - started
    for pod in pods:
        image = pod["spec"]["containers"][0]["image"]
        note(f"pod {pod['metadata']['name']} Ready ({image})")
    return elapsed


def image_size(image: str) -> str:
    """The image's size as buildah reports it (the node's images are built with it)."""
    done = subprocess.run(
        ["buildah", "images", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or f"unknown ({done.stderr.strip()})"
