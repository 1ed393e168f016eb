"""Listing runs a page at a time, newest first, with a cursor that stays put while runs
arrive: the same for every store and for the Kubernetes backend's listing."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from stageflow.models.records import RunSummary
from stageflow.models.status import RunPhase, format_timestamp


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = None


def paginate(
    summaries: Iterable[RunSummary],
    *,
    phase: RunPhase | None,
    limit: int,
    cursor: Cursor | None,
    namespace: str | None = None,
) -> RunPage:
    """Newest first, of one phase and namespace if asked, after `cursor`, `limit` at a time."""
    ordered = sorted(summaries, key=lambda s: (s.created_at, s.run_id), reverse=True)
    matching = [
        summary
        for summary in ordered
        if (phase is None or summary.phase is phase)
        and (namespace is None or summary.namespace == namespace)
        and (cursor is None or cursor.is_after(summary))
    ]
    page = matching[:limit]
    next_cursor = None
    if len(matching) > limit:
        next_cursor = Cursor(created_at=page[-1].created_at, run_id=page[-1].run_id).encode()
    return RunPage(items=page, next_cursor=next_cursor)


class Cursor(BaseModel):
    """Where a newest-first listing stopped: stable while new runs arrive."""

    created_at: datetime
    run_id: str

    def encode(self) -> str:
        raw = f"{format_timestamp(self.created_at)}|{self.run_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raise ValueError for a token this code did not make."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, run_id = raw.split("|", 1)
            return cls(
                created_at=datetime.fromisoformat(created.replace("Z", "+00:00")), run_id=run_id
            )
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"invalid cursor {token!r}") from error

    def is_after(self, summary: RunSummary) -> bool:
        """Whether `summary` comes after this cursor in newest-first order."""
        return (summary.created_at, summary.run_id) < (self.created_at, self.run_id)
