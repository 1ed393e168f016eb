"""The auth settings (STAGEFLOW_AUTH_*), the loopback rule, and the mode they choose.

`none` is the default only when the API listens on a loopback address: anything
else (`stageflow api --host 0.0.0.0`) must say which mode it wants, or the API
refuses to start and says why. An open API on a reachable address is never an
accident of a missing variable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stageflow.api.auth.model import Authorizer, NoAuth

Mode = Literal["none", "token", "kubernetes"]


class AuthConfigError(RuntimeError):
    """The auth settings cannot serve safely; the message says what to set."""


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    auth_mode: Mode | None = Field(
        default=None,
        description="`none`, `token` or `kubernetes`; unset means `none` on a loopback "
        "host and is refused on any other.",
    )
    auth_tokens_file: Path | None = Field(
        default=None, description="Mode `token`: lines of `TOKEN NAME ROLE` (viewer|editor)."
    )
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, description="Mode `kubernetes`: how long reviews are cached."
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def resolve_mode(settings: AuthSettings, *, host: str) -> Mode:
    if settings.auth_mode is not None:
        return settings.auth_mode
    if is_loopback(host):
        return "none"
    raise AuthConfigError(
        f"Refusing to serve on {host} without authentication: set STAGEFLOW_AUTH_MODE "
        "to `kubernetes` or `token` (or `none` to accept that anyone who reaches the "
        "port may run workflows)."
    )


def make_authorizer(settings: AuthSettings, *, host: str) -> Authorizer:
    """The mode's authorizer; raises AuthConfigError when the settings do not add up."""
    mode = resolve_mode(settings, host=host)
    if mode == "token":
        from stageflow.api.auth.tokens import TokenFileAuth, TokenFileError

        if settings.auth_tokens_file is None:
            raise AuthConfigError("STAGEFLOW_AUTH_MODE=token needs STAGEFLOW_AUTH_TOKENS_FILE")
        try:
            return TokenFileAuth(settings.auth_tokens_file)
        except (OSError, TokenFileError) as error:
            raise AuthConfigError(f"STAGEFLOW_AUTH_TOKENS_FILE: {error}") from None
    if mode == "kubernetes":
        from stageflow.api.auth.kubernetes import KubernetesAuth
        from stageflow.kube import KubeClient, KubeConfigError, load_configuration

        try:
            configuration = load_configuration()
        except KubeConfigError as error:
            raise AuthConfigError(
                f"STAGEFLOW_AUTH_MODE=kubernetes needs a cluster to ask (in-cluster service "
                f"account or KUBECONFIG): {error}"
            ) from None
        return KubernetesAuth(KubeClient(configuration), cache_seconds=settings.auth_cache_seconds)
    return NoAuth()
