"""What `stageflow submit` reads: a request body from a JSON or YAML file (or stdin), and
`--param KEY=VALUE` overrides of its run parameters.

Mistakes here are usage errors: `UsageError` carries the message the CLI prints
before it exits 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


class UsageError(Exception):
    """Bad input from the command line: said on stderr, exit status 2."""


def read_body(source: str) -> dict[str, Any]:
    """The request body in FILE, or on stdin for `-`: JSON, else YAML."""
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {where}: {error.strerror or error}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        try:
            body = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UsageError(f"{where} is neither JSON nor YAML: {error}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{where} must hold one object (the request body), not {_kind(body)}")
    return body


def with_params(body: dict[str, Any], pairs: list[str], *, flag: str = "--param") -> dict[str, Any]:
    """`body` with each KEY=VALUE set in its `params`. VALUE is read as JSON when it is JSON
    (`3`, `true`, `[1, 2]`), else kept as a string (`--param day=2026-11-22`)."""
    if not pairs:
        return body
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise UsageError(f"the body's `params` must be an object to take {flag}")
    params = dict(params)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes KEY=VALUE, not {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return {**body, "params": params}


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
