"""What the client raises: the API's answer when it refused (status and `detail`), or the
server out of reach. Callers catch `ClientError` for both; nothing else escapes a call."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of everything `stageflow.client` raises on purpose."""


class ApiError(ClientError):
    """The API answered with an error: `status_code` and its `detail` (a string, or
    FastAPI's list of validation errors for a 422)."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{status_code}: {describe(detail)}")


class NotFoundError(ApiError):
    """404: no such run (or task, or log)."""


class ConflictError(ApiError):
    """409: the run has already finished (cancel)."""


class UnreachableError(ClientError):
    """No answer from the server: refused, timed out, or the connection dropped."""


def describe(detail: Any) -> str:
    """One line for a human: `detail` as is, or each validation error as `where: what`."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                where = ".".join(str(part) for part in item.get("loc", ()))
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_for(status_code: int, detail: Any) -> ApiError:
    kind = {404: NotFoundError, 409: ConflictError}.get(status_code, ApiError)
    return kind(status_code, detail)
