"""Mode `kubernetes`: the apiserver says who the caller is and what they may do.

A TokenReview authenticates the bearer token; a SubjectAccessReview asks whether
that user may do the verb on `workflowruns` (group stageflow.dev) in the run's
namespace. Kubernetes RBAC is the whole policy. Answers are cached briefly
(`STAGEFLOW_AUTH_CACHE_SECONDS`, 5 s by default, bounded in size), so a burst of
requests costs one review, not one each; a revoked token or a removed RoleBinding
takes effect within that time. Tokens are cached by their SHA-256, never as text.
An apiserver that does not answer is a 503 (KubeUnavailableError), never an "allow".
"""

from __future__ import annotations

import hashlib

from cachetools import TTLCache

from stageflow.api.auth.model import RUNS, Principal, Resource, Verb
from stageflow.kube import GROUP, KubeClient
from stageflow.kube.reviews import SubjectAccessReviewSpec

CACHE_ENTRIES = 4096


class KubernetesAuth:
    enabled = True

    def __init__(self, kube: KubeClient, *, cache_seconds: float) -> None:
        self._kube = kube
        self._identities: TTLCache[str, Principal | None] = TTLCache(
            maxsize=CACHE_ENTRIES, ttl=cache_seconds
        )
        self._decisions: TTLCache[tuple[Principal, Verb, str, Resource], bool] = TTLCache(
            maxsize=CACHE_ENTRIES, ttl=cache_seconds
        )
        self.reviews = 0  # how many reviews were sent (what the cache saves shows here)

    async def authenticate(self, token: str) -> Principal | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        if key in self._identities:
            return self._identities[key]
        self.reviews += 1
        status = await self._kube.review_token(token)
        user = status.get("user") or {}
        principal = (
            Principal(
                name=user.get("username", ""),
                uid=user.get("uid", ""),
                groups=tuple(user.get("groups") or ()),
                extra=tuple(sorted((k, tuple(v)) for k, v in (user.get("extra") or {}).items())),
            )
            if status.get("authenticated") and user.get("username")
            else None
        )
        self._identities[key] = principal
        return principal

    async def allowed(
        self, principal: Principal, verb: Verb, namespace: str, resource: Resource = RUNS
    ) -> bool:
        key = (principal, verb, namespace, resource)
        if key in self._decisions:
            return self._decisions[key]
        self.reviews += 1
        spec: SubjectAccessReviewSpec = {
            "user": principal.name,
            "groups": list(principal.groups),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": GROUP,
                "resource": resource,
            },
        }
        if principal.uid:
            spec["uid"] = principal.uid
        if principal.extra:
            spec["extra"] = {name: list(values) for name, values in principal.extra}
        decision = bool((await self._kube.review_access(spec)).get("allowed"))
        self._decisions[key] = decision
        return decision

    async def close(self) -> None:
        await self._kube.aclose()
