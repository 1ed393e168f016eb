"""TokenReviews and SubjectAccessReviews: who a bearer token is, and what they may do (the
API's `kubernetes` auth mode, api/auth/kubernetes.py). Their shapes are kube/reviews.py's."""

from __future__ import annotations

from typing import cast

import kubernetes.client

from stageflow.kube.reviews import (
    SubjectAccessReviewSpec,
    SubjectAccessReviewStatus,
    TokenReviewStatus,
)
from stageflow.kube.transport import ApiCalls


class ReviewApi(ApiCalls):
    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._authn = kubernetes.client.AuthenticationV1Api(api)
        self._authz = kubernetes.client.AuthorizationV1Api(api)

    async def review_token(self, token: str) -> TokenReviewStatus:
        """A TokenReview's answer: `authenticated` and the `user` the token belongs to."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        review = self._plain(await self._call(self._authn.create_token_review, body))
        return cast(TokenReviewStatus, review.get("status") or {})

    async def review_access(self, spec: SubjectAccessReviewSpec) -> SubjectAccessReviewStatus:
        """A SubjectAccessReview's answer: is the user in `spec` `allowed`, and why not."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": dict(spec),
        }
        review = self._plain(await self._call(self._authz.create_subject_access_review, body))
        return cast(SubjectAccessReviewStatus, review.get("status") or {})
