"""Where `http_get` may connect: not to this pod, its loopback, or the cloud's metadata service.

Why: a submitter's `http_get` read the API's own `/openapi.json` through
127.0.0.1. A task that makes HTTP calls runs inside the API or the operator (or a
Job's pod), so the addresses only that process can reach are refused by default:
loopback, "this host" (0.0.0.0 reaches loopback on Linux), link-local (169.254.0.0/16
holds the cloud metadata service, fe80::/10) and the pod's own addresses.
`STAGEFLOW_HTTP_DENY` adds networks (e.g. the cluster's service CIDR, 10.0.0.0/8),
`STAGEFLOW_HTTP_ALLOW` exempts networks from every deny (e.g. 127.0.0.1/32 for a demo).

The check is made when the connection is opened, on the address actually dialled:
the host name is resolved here, every address it resolves to is checked, and the
connection goes to a checked address. So DNS rebinding (a name that resolves to a
public address for a check, then to 127.0.0.1 for the connection) does not get
through, and neither does a redirect (httpx does not follow them unless asked).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stageflow.engine.config import split_commas

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DENIED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "127.0.0.0/8",  # loopback
        "::1/128",
        "0.0.0.0/8",  # "this host": connecting to 0.0.0.0 reaches loopback
        "::/128",
        "169.254.0.0/16",  # link-local: the cloud metadata service (169.254.169.254)
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS's IPv6 metadata address
    )
)


class EgressError(ConnectionError):
    """A connection the egress policy refuses."""


class EgressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_HTTP_", extra="ignore")

    allow: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated networks (CIDR) exempt from every deny.",
    )
    deny: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated networks (CIDR) refused besides loopback, link-local "
        "and this pod's own addresses.",
    )

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_commas(value)


def own_addresses() -> set[Address]:
    """This pod's addresses (in Kubernetes, /etc/hosts maps the pod's name to its IP)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return set()
    return {_address(str(info[4][0])) for info in infos}


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


class EgressPolicy:
    def __init__(
        self,
        *,
        allow: Iterable[Network] = (),
        deny: Iterable[Network] = (),
        own: Iterable[Address] | None = None,
    ) -> None:
        self._allow = tuple(allow)
        self._deny = ALWAYS_DENIED + tuple(deny)
        self._own = frozenset(own_addresses() if own is None else own)

    @classmethod
    def from_env(cls) -> EgressPolicy:
        settings = EgressSettings()
        return cls(allow=settings.allow, deny=settings.deny)

    def refusal(self, text: str) -> str | None:
        """Why connecting to this address is refused (None: it is not)."""
        address = _address(text)
        if any(address in network for network in self._allow):
            return None
        for network in self._deny:
            if address in network:
                return f"{address} is in a denied network ({network})"
        if address in self._own:
            return f"{address} is this pod's own address"
        return None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, dialling only addresses the policy allows."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise EgressError(f"cannot resolve {host}: {error}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:  # one bad address refuses the name: no rebinding games
                raise EgressError(
                    f"connection to {host} refused by the egress policy: {reason} "
                    "(STAGEFLOW_HTTP_ALLOW exempts networks)"
                )
        return await self._inner.connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressError("unix sockets are refused by the egress policy")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy) -> httpx.AsyncHTTPTransport:
    """httpx's own transport whose connections go through the policy. httpx has no public
    hook for httpcore's network backend, so the pool's backend is wrapped in place."""
    transport = httpx.AsyncHTTPTransport()
    pool: Any = transport._pool  # see the docstring
    pool._network_backend = _GuardedBackend(policy, pool._network_backend)
    return transport


def redact_url(url: str) -> str:
    """The URL without credentials: user:password@ goes, and so does the query string
    (tokens travel there as often as in the userinfo)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        netloc += f":{port}"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
