"""Apiserver requests by verb and code: what stageflow costs the control plane, seen from here.

In the kube layer because every apiserver call goes through `ApiCalls._call`, so
counting there covers the API and the operator alike. Labels are bounded: a verb
(get, list, create, patch, delete) and an HTTP code, or `error` when no answer came. The
official client does not say which 2xx it got, so its successes count as `200`; the direct
calls (kube/direct.py) count the apiserver's own code.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

APISERVER_REQUESTS = Counter(
    "stageflow_apiserver_requests",
    "Requests to the Kubernetes apiserver by verb and HTTP code (`error`: no answer).",
    ["verb", "code"],
)
APISERVER_REQUEST_SECONDS = Histogram(
    "stageflow_apiserver_request_duration_seconds",
    "Latency of requests to the Kubernetes apiserver, by verb.",
    ["verb"],
)

_VERBS = {"read": "get", "get": "get", "list": "list", "create": "create"}
_VERBS |= {"patch": "patch", "replace": "update", "delete": "delete"}


def verb_of(method_name: str) -> str:
    """`patch_namespaced_custom_object_status` -> `patch`; the client's names start with it."""
    return _VERBS.get(method_name.split("_", 1)[0], "other")
