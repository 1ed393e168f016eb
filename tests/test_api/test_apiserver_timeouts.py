"""Finding 6 of issue 9: an apiserver that accepts connections and never answers.

Before, every call to it hung (reads hung past 10 s while an apiserver started);
now each call fails within its (connect, read) timeout and the API answers 503.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import kubernetes.client
import pytest
from fastapi.testclient import TestClient
from pytest_mock import MockerFixture

from stageflow.api import create_app
from stageflow.api import main as api_main
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from stageflow.kube import KubeClient, KubeUnavailableError
from tests.support.workflows import SEED


@pytest.fixture
def silent_apiserver() -> Iterator[str]:
    """A listening socket that never accepts: the kernel completes every connection
    (up to the backlog), and nothing is ever read or written on it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.timeout(30)
async def test_a_call_to_a_silent_apiserver_fails_within_its_timeout(
    silent_apiserver: str,
) -> None:
    kube = KubeClient(kubernetes.client.Configuration(host=silent_apiserver), timeout=(0.5, 0.5))
    try:
        with pytest.raises(KubeUnavailableError, match="unreachable"):
            await kube.get_run("default", "any")
    finally:
        kube.close()


@pytest.mark.timeout(30)
def test_the_api_answers_503_when_the_apiserver_does_not(
    silent_apiserver: str, tasks: TaskRegistry, mocker: MockerFixture
) -> None:
    mocker.patch.object(
        api_main,
        "load_configuration",
        return_value=kubernetes.client.Configuration(host=silent_apiserver),
    )
    settings = ApiSettings(
        backend="kubernetes",
        namespace="default",
        kube_connect_timeout_seconds=0.5,
        kube_read_timeout_seconds=0.5,
    )
    with TestClient(create_app(settings, tasks=tasks)) as client:
        read = client.get(f"/workflow/{uuid.uuid4()}")
        assert read.status_code == 503
        assert "apiserver" in read.json()["detail"]
        submitted = client.post("/workflow", json=SEED)
        assert submitted.status_code == 503
