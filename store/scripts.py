"""The Lua scripts of the Redis store, read from `store/lua/` as package resources.

Why scripts: every write is one script, so a check and the write it guards are atomic
(a mirror write and the version it must be newer than; a status write and the run
still existing). Why files rather than Python strings: a reader sees Lua as Lua (an
editor highlights it, `redis-cli --eval` runs it), each file says what its KEYS and
ARGV are, and the wheel carries them as package data (pyproject.toml's
`[tool.setuptools.package-data]`; tests/test_chart/test_dockerfile.py checks it).

`newer.lua` and `hset_from.lua` are helpers, not scripts: the scripts that need one are
sent with it prepended (Redis scripts cannot import one another), so each is written once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

# The helpers each script's text is prefixed with: newer.lua's `newer(a, b)` for those that
# order resourceVersions, hset_from.lua's `hset_from(key, first)` for those that write tasks.
_HELPERS: dict[str, tuple[str, ...]] = {
    "write_run": ("newer", "hset_from"),
    "update_status": ("hset_from",),
    "delete_run": ("newer",),
    "prune_run": ("newer",),
}


@functools.cache
def lua(name: str) -> str:
    """The text of `lua/<name>.lua` (read once per process), after the helpers it needs."""
    text = (files("stageflow.store") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    return "".join(lua(helper) for helper in _HELPERS.get(name, ())) + text


@dataclass(frozen=True)
class RunScripts:
    """Every script, registered on one client: redis-py sends each by its SHA (EVALSHA)
    and loads it on the first NOSCRIPT, so a Redis restart costs one reload."""

    write_run: AsyncScript
    update_status: AsyncScript
    delete_run: AsyncScript
    prune_run: AsyncScript
    set_if_exists: AsyncScript

    @classmethod
    def on(cls, client: aioredis.Redis) -> RunScripts:
        return cls(
            write_run=client.register_script(lua("write_run")),
            update_status=client.register_script(lua("update_status")),
            delete_run=client.register_script(lua("delete_run")),
            prune_run=client.register_script(lua("prune_run")),
            set_if_exists=client.register_script(lua("set_if_exists")),
        )
