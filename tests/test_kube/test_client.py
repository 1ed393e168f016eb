"""KubeClient is composed of one class per resource family: the facade must still offer
every call the API and the operator make, and each family must make its own API objects."""

from __future__ import annotations

import inspect

import kubernetes.client

from stageflow.kube import KubeClient
from stageflow.kube.event_api import EventApi
from stageflow.kube.job_api import JobApi
from stageflow.kube.lease_api import LeaseApi
from stageflow.kube.review_api import ReviewApi
from stageflow.kube.run_api import RunApi

FAMILIES = {
    RunApi: {
        "create_run",
        "get_run",
        "list_runs",
        "list_runs_snapshot",
        "run_versions",
        "patch_run",
        "patch_run_status",
        "delete_run",
    },
    JobApi: {"create_job", "get_job", "delete_job", "job_versions", "job_pod", "job_log"},
    EventApi: {"create_event"},
    LeaseApi: {"get_lease", "create_lease", "replace_lease"},
    ReviewApi: {"review_token", "review_access"},
}


def test_the_facade_offers_every_family_s_calls_and_no_other() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(KubeClient, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == set().union(*FAMILIES.values()) | {"ping", "close"}
    for family, names in FAMILIES.items():
        assert {name for name in vars(family) if not name.startswith("_")} == names


def test_one_client_makes_every_family_s_api_objects() -> None:
    kube = KubeClient(kubernetes.client.Configuration(host="http://apiserver.invalid"))
    try:
        assert isinstance(kube._custom, kubernetes.client.CustomObjectsApi)
        assert isinstance(kube._batch, kubernetes.client.BatchV1Api)
        assert isinstance(kube._core, kubernetes.client.CoreV1Api)
        assert isinstance(kube._events, kubernetes.client.CoreV1Api)
        assert isinstance(kube._coordination, kubernetes.client.CoordinationV1Api)
        assert isinstance(kube._authn, kubernetes.client.AuthenticationV1Api)
        assert isinstance(kube._authz, kubernetes.client.AuthorizationV1Api)
        assert isinstance(kube._version, kubernetes.client.VersionApi)
        assert kube._custom.api_client is kube._api  # one connection pool for all of them
    finally:
        kube.close()
