"""The watch check's lists on the real apiserver: metadata only, the versions the objects
carry, Jobs picked by the run label (kmock ignores the metadata-only Accept header)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from stageflow.kube import GROUP, VERSION, KubeClient, ObjectKey, load_configuration
from stageflow.kube.bodies import Job
from stageflow.kube.resource import RUN_LABEL
from tests.support.cluster import Cluster
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def kube(e2e_cluster: Cluster) -> AsyncIterator[KubeClient]:
    client = KubeClient(load_configuration(e2e_cluster.kubeconfig))
    yield client
    await client.aclose()


def job(name: str, labels: dict[str, str]) -> Job:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": True,  # nothing is to run: only its metadata is listed
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "python:3.11-slim"}],
                }
            },
        },
    }


async def test_run_and_job_versions_are_what_the_apiserver_holds(
    kube: KubeClient, k8s_namespace: str
) -> None:
    name = str(uuid.uuid4())
    await kube.create_run(
        k8s_namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {
                "workflow": [{"type": "sequential", "tasks": [{"name": "a", "task": "task_a"}]}]
            },
        },
    )

    async def finished() -> bool:
        run = await kube.get_run(k8s_namespace, name)
        return run is not None and run.get("status", {}).get("phase") == "Succeeded"

    await eventually(finished, within=30)  # the operator writes no more to it
    run = await kube.get_run(k8s_namespace, name)
    assert run is not None
    version = run["metadata"]["resourceVersion"]
    assert await kube.run_versions(k8s_namespace) == {(k8s_namespace, name): version}
    assert (await kube.run_versions(None))[ObjectKey(k8s_namespace, name)] == version

    await kube.create_job(k8s_namespace, job("labelled", {RUN_LABEL: name}))
    await kube.create_job(k8s_namespace, job("unlabelled", {"app": "other"}))

    # This control plane runs the Job controller, which writes a new Job's status at once
    # (v1.20 has no `suspend`), so the version moves on after the create: the listing must
    # give the version a read gives, once the controller has had its say.
    async def listed_as_read() -> bool:
        read = await kube.get_job(k8s_namespace, "labelled")
        assert read is not None
        expected = {(k8s_namespace, "labelled"): read["metadata"]["resourceVersion"]}
        return await kube.job_versions(k8s_namespace, RUN_LABEL) == expected

    await eventually(listed_as_read, within=30)
    everywhere = await kube.job_versions(None, RUN_LABEL)
    assert (k8s_namespace, "labelled") in everywhere
    assert (k8s_namespace, "unlabelled") not in everywhere
