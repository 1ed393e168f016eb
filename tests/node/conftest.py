"""The node tier's fixtures: the real node, the chart released on it, the example's image.

What they are made of (kubectl and helm on the node, the port-forward, the waits) is in
tests/support/node.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import CHART, helm_binary
from tests.support.node import (
    ALLOWED_IMAGES,
    APP_IMAGE,
    EXAMPLE_IMAGE,
    NAMESPACE,
    NO_NODE,
    NODE_RUN,
    NODE_SCRIPTS,
    RELEASE,
    REPORT,
    Node,
    PortForward,
    image_size,
    install_seconds,
    note,
    pods_ready_seconds,
    ready,
    user_token,
)
from tests.support.paths import ROOT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("node tier: what ran on the real node")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def node() -> Node:
    configured = os.environ.get("STAGEFLOW_NODE_KUBECONFIG")
    kubeconfig = configured or str(NODE_RUN / "kubeconfig")
    if not Path(kubeconfig).exists():
        pytest.skip(NO_NODE)
    helm = helm_binary()
    if helm is None:
        pytest.skip("no helm: run ../shared/k8s/install.sh (it installs helm)")
    found = Node(kubeconfig=kubeconfig, helm_binary=helm)
    try:
        nodes = found.json("get", "nodes")["items"]
    except AssertionError:
        if configured:
            raise  # CI said there is a node: its absence is a failure, not a skip
        pytest.skip(f"the node's kubeconfig is there but its apiserver does not answer; {NO_NODE}")
    assert nodes, "the node's apiserver has no node"
    assert all(ready(n) for n in nodes), "the node is not Ready"
    return found


@pytest.fixture(scope="session")
def release(node: Node) -> Iterator[PortForward]:
    """The chart from the checkout, installed with the checkout's image, reached through its
    Service; uninstalled (and its namespace deleted) whatever happens."""
    node.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s")
    note(f"image {APP_IMAGE}: {image_size(APP_IMAGE)}")
    started = time.monotonic()
    seconds = install_seconds(
        node,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        f"tasks.allowedImages={{{ALLOWED_IMAGES}}}",
    )
    # 2 API replicas, 2 operators (a leader and a standby on a Lease), Redis
    ready_seconds = pods_ready_seconds(node, started, expected=5)
    note(f"helm install --wait: {seconds:.1f}s; all 5 pods Ready {ready_seconds:.1f}s after")
    forward = PortForward(node, token=user_token(node))
    forward.start()
    try:
        yield forward
    finally:  # runs first, while an operator may still be there to see them go
        forward.stop()
        node.kubectl("delete", "wfr", "--all", "-n", NAMESPACE, "--wait=false", check=False)
        node.helm("uninstall", RELEASE, "-n", NAMESPACE)
        node.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="session")
def example_image(node: Node) -> str:
    """The data-quality example's tasks in an image of their own (a user's own tasks):
    examples/data_quality/Dockerfile on top of the checkout's image, built with buildah
    and imported into the node's containerd, as image-app.sh does for the app image."""
    started = time.monotonic()
    build = subprocess.run(
        [
            "buildah",
            "bud",
            "--pull=never",
            "--layers",
            "-q",
            "--build-arg",
            f"BASE={APP_IMAGE}",
            "-f",
            str(ROOT / "examples" / "data_quality" / "Dockerfile"),
            "-t",
            EXAMPLE_IMAGE,
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    imported = subprocess.run(
        [str(NODE_SCRIPTS / "image-import.sh"), EXAMPLE_IMAGE],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    note(f"example image {EXAMPLE_IMAGE} built and imported in {time.monotonic() - started:.1f}s")
    return EXAMPLE_IMAGE
