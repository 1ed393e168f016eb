"""WorkflowRuns (stageflow.dev/v1alpha1) on the apiserver: create, read, list, patch, delete.

The API creates, reads, cancels (a spec patch) and deletes runs; the operator lists them
for its mirror, patches their status subresource, and compares their versions with what
its watch has seen (`run_versions`, a metadata-only list).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Required, TypedDict, cast

import kubernetes.client

from stageflow.kube.bodies import WorkflowRun
from stageflow.kube.direct import run_path
from stageflow.kube.errors import KubeError
from stageflow.kube.objects import ObjectKey
from stageflow.kube.resource import GROUP, PLURAL, VERSION
from stageflow.kube.transport import ApiCalls, metadata_only


class _ObjectMetadata(TypedDict, total=False):
    name: Required[str]
    namespace: str
    resourceVersion: str


class _MetadataItem(TypedDict):
    metadata: _ObjectMetadata


class _MetadataList(TypedDict, total=False):
    items: list[_MetadataItem]


def versions_of(listing: Any) -> dict[ObjectKey, str]:
    """(namespace, name) -> resourceVersion of each item of a metadata-only list."""
    items = cast(_MetadataList, listing).get("items") or []
    return {
        ObjectKey.of(item["metadata"]): item["metadata"].get("resourceVersion", "")
        for item in items
    }


@dataclass(frozen=True)
class RunListing:
    """A list of WorkflowRuns as of `resource_version` (the collection's): every run that
    existed at that version is in `items`. None when the server did not say."""

    items: list[WorkflowRun]
    resource_version: str | None


def _one(namespace: str, name: str) -> tuple[str, str, str, str, str]:
    """The custom-objects client's arguments that name one WorkflowRun."""
    return GROUP, VERSION, namespace, PLURAL, name


class RunApi(ApiCalls):
    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)

    async def create_run(self, namespace: str, body: WorkflowRun) -> WorkflowRun:
        """Once per run, so sent directly (kube/direct.py)."""
        created = await self._send(
            self._custom.create_namespaced_custom_object, "POST", run_path(namespace), body
        )
        run: WorkflowRun = json.loads(created)
        return run

    async def get_run(self, namespace: str, name: str) -> WorkflowRun | None:
        found: WorkflowRun | None = await self._maybe(
            self._custom.get_namespaced_custom_object, *_one(namespace, name)
        )
        return found

    async def list_runs(self, namespace: str | None) -> list[WorkflowRun]:
        return (await self.list_runs_snapshot(namespace)).items

    async def list_runs_snapshot(self, namespace: str | None) -> RunListing:
        """Every WorkflowRun (of `namespace`, or all), and the version the list was read at."""
        listing = await self._list(namespace)
        return RunListing(
            items=listing.get("items", []),
            resource_version=(listing.get("metadata") or {}).get("resourceVersion") or None,
        )

    async def list_labelled_runs(self, namespace: str, selector: str) -> list[WorkflowRun]:
        """The WorkflowRuns of `namespace` with labels matching `selector` (a schedule's)."""
        items: list[WorkflowRun] = (await self._list(namespace, label_selector=selector)).get(
            "items", []
        )
        return items

    async def run_versions(self, namespace: str | None) -> dict[ObjectKey, str]:
        """(namespace, name) -> resourceVersion of every WorkflowRun, as metadata only."""
        return versions_of(await self._list(namespace, **metadata_only()))

    async def _list(self, namespace: str | None, **params: Any) -> Any:
        """One list of WorkflowRuns: of `namespace`, or of every namespace (None)."""
        if namespace is None:
            return await self._call(
                self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **params
            )
        return await self._call(
            self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **params
        )

    async def patch_run(self, namespace: str, name: str, patch: WorkflowRun) -> WorkflowRun | None:
        """A merge patch of the main resource (spec, metadata); None if it is gone."""
        patched: WorkflowRun | None = await self._maybe(
            self._custom.patch_namespaced_custom_object,
            *_one(namespace, name),
            patch,
        )
        return patched

    async def patch_run_status(self, namespace: str, name: str, patch: WorkflowRun) -> bool:
        """A merge patch of the status subresource; False if the run is gone. Several per
        run, so sent directly (kube/direct.py); the patched object is not parsed: the
        operator holds the status it wrote."""
        try:
            await self._send(
                self._custom.patch_namespaced_custom_object_status,
                "PATCH",
                run_path(namespace, name, "status"),
                patch,
                content_type="application/merge-patch+json",
            )
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def delete_run(self, namespace: str, name: str) -> bool:
        deleted = await self._maybe(
            self._custom.delete_namespaced_custom_object, *_one(namespace, name)
        )
        return deleted is not None
