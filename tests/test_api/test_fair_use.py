"""Issue 10, fair use: against a real `stageflow api` process, no client can hold more than
its share of streams or connections, and a slow client is dropped.

Each test failed before its fix: streams were unbounded (and each held a Redis
connection), and uvicorn waited for slow headers and bodies for as long as they took.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import submit
from tests.support.live_api import running_api
from tests.support.workflows import sleeps


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


@contextlib.contextmanager
def open_stream(client: httpx.Client, run_id: str) -> Iterator[httpx.Response]:
    """An event stream held open, its first event read. (The line iterator is kept
    referenced: a collected one closes its stream.)"""
    with client.stream("GET", f"/workflow/{run_id}/events") as response:
        lines = response.iter_lines()
        if response.status_code == 200:
            assert next(lines) == "event: snapshot"
        yield response
        del lines


def test_event_streams_are_bounded_per_client(store_url: str | None) -> None:
    with running_api(store_url, max_streams_per_client="2") as client:
        run_id = submit(client, sleeps(1, 60))
        with open_stream(client, run_id) as first, open_stream(client, run_id) as second:
            assert (first.status_code, second.status_code) == (200, 200)
            refused = client.get(f"/workflow/{run_id}/events")
            assert refused.status_code == 429
            assert refused.json() == {
                "detail": "Too many event streams from this client: at most 2 "
                "(STAGEFLOW_MAX_STREAMS_PER_CLIENT)"
            }
            assert refused.headers["retry-after"] == "5"
            assert client.get(f"/workflow/{run_id}").status_code == 200  # the rest still serves
        deadline = time.monotonic() + 10  # a closed stream gives its place back
        while True:
            with open_stream(client, run_id) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "closed streams never gave their place back"
            time.sleep(0.05)
        client.post(f"/workflow/{run_id}/cancel")


def test_event_streams_are_bounded_in_total(store_url: str | None) -> None:
    with running_api(store_url, max_streams="1") as client:
        run_id = submit(client, sleeps(1, 60))
        with open_stream(client, run_id) as first:
            assert first.status_code == 200
            refused = client.get(f"/workflow/{run_id}/events")
            assert (refused.status_code, refused.json()) == (
                503,
                {"detail": "Too many event streams open: at most 1 (STAGEFLOW_MAX_STREAMS)"},
            )
        client.post(f"/workflow/{run_id}/cancel")


def raw_connection(client: httpx.Client) -> socket.socket:
    url = client.base_url
    connection = socket.create_connection((str(url.host), int(url.port or 80)), timeout=20)
    return connection


def test_a_client_that_never_finishes_its_headers_is_dropped() -> None:
    with running_api(None, header_read_timeout_seconds="0.5") as client:
        connection = raw_connection(client)
        with connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no blank line
            assert connection.recv(1024) == b""  # closed by the server (else: a 20 s timeout)
        assert client.get("/healthz").status_code == 200


def test_a_client_that_never_finishes_its_body_gets_a_408() -> None:
    with running_api(None, body_read_timeout_seconds="0.5") as client:
        connection = raw_connection(client)
        with connection:
            connection.sendall(
                b"POST /workflow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"dag": '
            )
            answer = b""
            while b"}" not in answer:  # the whole answer, however the kernel splits it
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"Request body not received within 0.5s" in answer
