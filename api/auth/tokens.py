"""Mode `token`: bearer tokens listed in a file, `TOKEN NAME ROLE` a line.

ROLE `viewer` may do every GET (get, list), `editor` everything. Blank lines and
`#` comments are skipped. A token is compared with every line's in constant time
(`hmac.compare_digest`), so neither the match nor its position leaks through
timing. The file is read again when its modification time or size changes, so a
token is added or revoked without a restart.
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stageflow.api.auth.model import RUNS, Principal, Resource, Verb

logger = logging.getLogger(__name__)

Role = Literal["viewer", "editor"]
VIEWER_VERBS: frozenset[Verb] = frozenset({"get", "list"})


class TokenFileError(ValueError):
    """The tokens file cannot be used (its path and line say why)."""


@dataclass(frozen=True)
class TokenEntry:
    token: bytes
    name: str
    role: Role


def parse_tokens(text: str, *, source: str) -> list[TokenEntry]:
    entries: list[TokenEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 3 or fields[2] not in ("viewer", "editor"):
            raise TokenFileError(
                f"{source}:{number}: expected `TOKEN NAME ROLE` with ROLE viewer or editor"
            )
        role: Role = "viewer" if fields[2] == "viewer" else "editor"
        entries.append(TokenEntry(token=fields[0].encode(), name=fields[1], role=role))
    return entries


class TokenFileAuth:
    enabled = True

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: list[TokenEntry] = []
        self._reload()  # an unreadable or malformed file stops the API at start

    def _reload(self) -> None:
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        entries = parse_tokens(self._path.read_text(), source=str(self._path))
        self._entries, self._stamp = entries, stamp
        logger.info("read %d tokens from %s", len(entries), self._path)

    def _current(self) -> list[TokenEntry]:
        """The entries, read again if the file changed; the last good ones if it broke."""
        try:
            self._reload()
        except (OSError, TokenFileError) as error:
            logger.error("keeping the tokens read before: %s", error)
        return self._entries

    async def authenticate(self, token: str) -> Principal | None:
        presented = token.encode()
        found: TokenEntry | None = None
        for entry in self._current():  # no early exit: every line costs the same
            if hmac.compare_digest(presented, entry.token) and found is None:
                found = entry
        return None if found is None else Principal(name=found.name, groups=(found.role,))

    async def allowed(
        self, principal: Principal, verb: Verb, namespace: str, resource: Resource = RUNS
    ) -> bool:
        """The role came with the token (as the principal's group), and covers runs,
        templates and schedules alike."""
        return "editor" in principal.groups or (
            "viewer" in principal.groups and verb in VIEWER_VERBS
        )

    async def close(self) -> None:
        return None
