"""http_get's egress policy: what it refuses by default, what the settings
change, and that its errors never repeat a URL's credentials. Against a real HTTP
server on loopback, so the refusal is of a connection that would have succeeded."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator

import pytest

from stageflow.tasks.egress import EgressPolicy, EgressSettings, redact_url
from stageflow.tasks.http import http_get


@pytest.fixture
def server() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1; yields its port."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"the API's own /openapi.json")

        def log_message(self, *_: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGEFLOW_HTTP_ALLOW", raising=False)
    monkeypatch.delenv("STAGEFLOW_HTTP_DENY", raising=False)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "127.1.2.3", "0.0.0.0", "[::ffff:127.0.0.1]", "[::1]"],
)
async def test_loopback_is_refused_however_it_is_spelled(server: int, host: str) -> None:
    with pytest.raises(RuntimeError, match="refused by the egress policy") as refused:
        await http_get(f"http://{host}:{server}/openapi.json")
    assert "denied network" in str(refused.value)


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "fd00:ec2::254"])
def test_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    assert EgressPolicy(own=()).refusal(address) is not None


def test_the_pods_own_addresses_are_refused() -> None:
    policy = EgressPolicy(own=[ipaddress.ip_address("10.244.1.7")])
    assert policy.refusal("10.244.1.7") == "10.244.1.7 is this pod's own address"
    assert policy.refusal("10.244.1.8") is None
    assert policy.refusal("93.184.216.34") is None


def test_deny_adds_networks_and_allow_exempts_them() -> None:
    settings = EgressSettings.model_validate(
        {"deny": "10.0.0.0/8, 192.168.0.0/16", "allow": "10.1.0.0/16,127.0.0.1/32"}
    )
    policy = EgressPolicy(allow=settings.allow, deny=settings.deny, own=())
    assert policy.refusal("10.2.3.4") == "10.2.3.4 is in a denied network (10.0.0.0/8)"
    assert policy.refusal("192.168.1.1") is not None
    assert policy.refusal("10.1.2.3") is None  # allowed inside a denied network
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("127.0.0.2") is not None


async def test_stageflow_http_allow_lets_a_demo_reach_loopback(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGEFLOW_HTTP_ALLOW", "127.0.0.1/32")
    assert await http_get(f"http://127.0.0.1:{server}/") == {"status": 200, "bytes": 27}


async def test_stageflow_http_deny_refuses_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEFLOW_HTTP_DENY", "192.0.2.0/24")
    with pytest.raises(RuntimeError, match=r"192\.0\.2\.10 is in a denied network"):
        await http_get("http://192.0.2.10/")


async def test_errors_never_echo_credentials(server: int) -> None:
    with pytest.raises(RuntimeError) as refused:
        await http_get(f"http://admin:hunter2@127.0.0.1:{server}/x?token=abc123")
    message = str(refused.value)
    assert message.startswith(f"GET http://127.0.0.1:{server}/x?… failed")
    for secret in ("admin", "hunter2", "abc123"):
        assert secret not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@example.com/a?b=c#d", "https://example.com/a?…"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("https://example.com", "https://example.com"),
        ("http://x:99999999/", "http://x/"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_a_proxy_setting_is_no_way_around_the_policy(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY pointing at a server on loopback would take requests past the policy
    (through a transport of httpx's own); with its own transport, http_get uses no proxy."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(RuntimeError, match=r"cannot resolve stageflow\.invalid"):
        await http_get("http://stageflow.invalid/")  # through the proxy it would be a 200
