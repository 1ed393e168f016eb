"""The log format of `stageflow api` and `stageflow operator`: text or one JSON object a line.

Why contextvars: a run's lines come from many places (the runner, the status
writer, an executor, the Redis mirror) that should not pass a logger around.
`bind(run_id=..., namespace=...)` sets the run's fields in the current context;
asyncio copies the context into every task created under it (the run's tasks,
its status writer) and `asyncio.to_thread` into threads, so every line logged
while a run is driven carries them, and `task` too inside an attempt. kopf's own
per-object lines carry their object's name and namespace (its `k8s_ref`).

STAGEFLOW_LOG_FORMAT=json (the chart's choice) gives one JSON object per line with
`time`, `level`, `logger`, `message` and the bound fields; `text` (the default)
appends the fields as `key=value` to a readable line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

FIELDS = ("run_id", "namespace", "task")

_bound: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "stageflow_log_fields", default=None
)


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object a line (for a log pipeline)."
    )


@contextlib.contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Add fields to every line logged in this context (and the tasks it starts)."""
    token = _bound.set({**bound(), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> dict[str, str]:
    """The fields bound in this context (a copy)."""
    return dict(_bound.get() or {})


class ContextFilter(logging.Filter):
    """Puts the bound fields (or kopf's object reference) on each record as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _bound.get() or {}
        ref: Any = getattr(record, "k8s_ref", None)
        if not fields and isinstance(ref, dict) and ref.get("kind") == "WorkflowRun":
            fields = {"run_id": ref.get("name", ""), "namespace": ref.get("namespace", "")}
        for name in FIELDS:
            if not hasattr(record, name) and name in fields:
                setattr(record, name, fields[name])
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{text} [{' '.join(extra)}]" if extra else text


def handler(log_format: Literal["text", "json"], stream: IO[str] | None = None) -> logging.Handler:
    out = logging.StreamHandler(stream)
    out.addFilter(ContextFilter())
    out.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return out


def configure(*, level: int | str = logging.INFO, log_format: str | None = None) -> None:
    """Root logging in the chosen format (STAGEFLOW_LOG_FORMAT unless given)."""
    chosen = LogSettings(log_format=log_format) if log_format else LogSettings()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(chosen.log_format))
    root.setLevel(level)
