"""KubeClient is composed of one class per resource family: the facade must still offer
every call the API and the operator make, and each family must make its own API objects."""

from __future__ import annotations

import inspect
from typing import Any

import kubernetes.client
import pytest
from pytest_mock import MockerFixture

from stageflow.kube import GROUP, PLURAL, VERSION, KubeClient
from stageflow.kube.catalog_api import ScheduleApi, TemplateApi
from stageflow.kube.direct import DirectCalls
from stageflow.kube.event_api import EventApi
from stageflow.kube.job_api import JobApi
from stageflow.kube.lease_api import LeaseApi
from stageflow.kube.review_api import ReviewApi
from stageflow.kube.run_api import RunApi
from tests.support.rbac import request_of

RUNS = f"/apis/{GROUP}/{VERSION}/namespaces/ns/{PLURAL}"

FAMILIES = {
    RunApi: {
        "create_run",
        "get_run",
        "list_runs",
        "list_runs_snapshot",
        "list_labelled_runs",
        "run_versions",
        "patch_run",
        "patch_run_status",
        "delete_run",
    },
    TemplateApi: {
        "get_template",
        "list_templates",
        "create_template",
        "replace_template",
        "patch_template_status",
        "delete_template",
        "create_revision",
        "get_revision",
        "list_revisions",
        "delete_revision",
    },
    ScheduleApi: {
        "get_schedule",
        "list_schedules",
        "create_schedule",
        "replace_schedule",
        "patch_schedule",
        "patch_schedule_status",
        "delete_schedule",
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
    assert public == set().union(*FAMILIES.values()) | {"ping", "close", "aclose"}
    for family, names in FAMILIES.items():
        own = {name for name in vars(family) if not name.startswith("_")}
        assert own - {"CUSTOM_PLURAL"} == names


def test_one_client_makes_every_family_s_api_objects() -> None:
    kube = KubeClient(kubernetes.client.Configuration(host="http://apiserver.invalid"))
    try:
        assert isinstance(kube._custom, kubernetes.client.CustomObjectsApi)
        assert isinstance(kube._batch, kubernetes.client.BatchV1Api)
        assert isinstance(kube._core, kubernetes.client.CoreV1Api)
        assert isinstance(kube._events, kubernetes.client.CoreV1Api)
        assert isinstance(kube._coordination, kubernetes.client.CoordinationV1Api)
        assert isinstance(kube._apps, kubernetes.client.AppsV1Api)
        assert isinstance(kube._authn, kubernetes.client.AuthenticationV1Api)
        assert isinstance(kube._authz, kubernetes.client.AuthorizationV1Api)
        assert isinstance(kube._version, kubernetes.client.VersionApi)
        assert kube._custom.api_client is kube._api  # one connection pool for all of them
    finally:
        kube.close()


@pytest.mark.parametrize(
    ("call", "api_class", "stands_for", "expected"),
    [
        ("create_run", "CustomObjectsApi", "create_namespaced_custom_object", ("POST", RUNS)),
        (
            "patch_run_status",
            "CustomObjectsApi",
            "patch_namespaced_custom_object_status",
            ("PATCH", f"{RUNS}/r1/status"),
        ),
        (
            "create_event",
            "CoreV1Api",
            "create_namespaced_event",
            ("POST", "/api/v1/namespaces/ns/events"),
        ),
    ],
)
async def test_direct_calls_send_what_the_official_client_would(
    mocker: MockerFixture,
    call: str,
    api_class: str,
    stands_for: str,
    expected: tuple[str, str],
) -> None:
    """kube/direct.py writes its three requests' paths itself: they are the official
    client's, whose method each call names (and the chart's RBAC is derived from)."""
    sent: list[tuple[str, str]] = []

    async def request(_: object, method: str, path: str, body: bytes, **__: object) -> Any:
        sent.append((method, path))
        return 201, "Created", b"{}"

    mocker.patch.object(DirectCalls, "request", autospec=True, side_effect=request)
    kube = KubeClient(kubernetes.client.Configuration(host="http://apiserver.invalid"))
    try:
        args: tuple[Any, ...] = ("ns", "r1", {}) if call == "patch_run_status" else ("ns", {})
        await getattr(kube, call)(*args)
    finally:
        await kube.aclose()
    method, template = request_of(api_class, stands_for)
    official = template.format(
        group=GROUP, version=VERSION, namespace="ns", plural=PLURAL, name="r1"
    )
    assert sent == [expected] == [(method, official)]
