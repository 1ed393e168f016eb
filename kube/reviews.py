"""The shapes of the two reviews the API's `kubernetes` auth mode asks the apiserver for.

TokenReview (authentication.k8s.io/v1): who does this bearer token belong to?
SubjectAccessReview (authorization.k8s.io/v1): may that user do this verb on this
resource in this namespace? Both are create-only, cluster-scoped, and stored nowhere:
the apiserver answers them in its response. KubeClient sends them (review_token,
review_access); these TypedDicts are what goes in and comes out.
"""

from __future__ import annotations

from typing import TypedDict


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class TokenReviewStatus(TypedDict, total=False):
    authenticated: bool
    user: UserInfo
    audiences: list[str]
    error: str


class ResourceAttributes(TypedDict, total=False):
    namespace: str
    verb: str
    group: str
    resource: str
    name: str


class SubjectAccessReviewSpec(TypedDict, total=False):
    user: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]
    resourceAttributes: ResourceAttributes


class SubjectAccessReviewStatus(TypedDict, total=False):
    allowed: bool
    denied: bool
    reason: str
    evaluationError: str
