"""Which Kubernetes object: the one typed key (namespace, name) every layer uses.

A NamedTuple, so it is still the plain `(namespace, name)` pair that dict keys, sets and
comparisons need, and reads as `key.namespace` where a name says more than `key[0]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class ObjectKey(NamedTuple):
    namespace: str
    name: str

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> ObjectKey:
        """The key of an object from its `metadata` (a cluster-scoped one has namespace "")."""
        return cls(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
