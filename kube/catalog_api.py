"""WorkflowTemplates (with their revisions, kept as ControllerRevisions) and Schedules:
the calls, as run_api.py makes them for WorkflowRuns.

A template's revision is its `metadata.generation`: the apiserver counts every change of a
spec, and only changes of it, so the counter is right however the template was written
(the API's PUT or `kubectl apply`). Each revision's spec is kept in a ControllerRevision
named `{template}-{revision}` and owned by the template (Kubernetes' own record of a
StatefulSet's or DaemonSet's past specs), so deleting the template deletes its history.
"""

from __future__ import annotations

from typing import Any, ClassVar

import kubernetes.client

from stageflow.kube.resource import GROUP, VERSION
from stageflow.kube.transport import ApiCalls

TEMPLATES = "workflowtemplates"
SCHEDULES = "schedules"
TEMPLATE_LABEL = f"{GROUP}/template"


class _CustomObjects(ApiCalls):
    """The calls on one custom resource. `CUSTOM_PLURAL` names it for the RBAC derivation
    (tests/support/rbac.py); the calls name their plural themselves, as KubeClient is all
    these classes at once and has one `CUSTOM_PLURAL` only."""

    CUSTOM_PLURAL: ClassVar[str]

    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)


def _templates(namespace: str, *name: str) -> tuple[str, ...]:
    return (GROUP, VERSION, namespace, TEMPLATES, *name)


def _schedules(namespace: str, *name: str) -> tuple[str, ...]:
    return (GROUP, VERSION, namespace, SCHEDULES, *name)


class TemplateApi(_CustomObjects):
    CUSTOM_PLURAL = TEMPLATES

    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._apps = kubernetes.client.AppsV1Api(api)

    async def get_template(self, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._maybe(
            self._custom.get_namespaced_custom_object, *_templates(namespace, name)
        )
        return found

    async def list_templates(self, namespace: str | None) -> list[dict[str, Any]]:
        """The templates of `namespace`, or of all (the operator's, when it watches all)."""
        if namespace is None:
            listing = await self._call(
                self._custom.list_cluster_custom_object, GROUP, VERSION, TEMPLATES
            )
        else:
            listing = await self._call(
                self._custom.list_namespaced_custom_object, *_templates(namespace)
            )
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    async def create_template(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            self._custom.create_namespaced_custom_object, GROUP, VERSION, namespace, TEMPLATES, body
        )
        return created

    async def replace_template(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT with the body's resourceVersion: KubeConflictError if it changed meanwhile."""
        replaced: dict[str, Any] = await self._call(
            self._custom.replace_namespaced_custom_object, *_templates(namespace, name), body
        )
        return replaced

    async def patch_template_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        patched: dict[str, Any] | None = await self._maybe(
            self._custom.patch_namespaced_custom_object_status,
            *_templates(namespace, name),
            patch,
        )
        return patched

    async def delete_template(self, namespace: str, name: str) -> bool:
        deleted = await self._maybe(
            self._custom.delete_namespaced_custom_object, *_templates(namespace, name)
        )
        return deleted is not None

    async def create_revision(self, namespace: str, body: dict[str, Any]) -> None:
        """A template revision's snapshot; KubeConflictError if it exists already."""
        await self._call(self._apps.create_namespaced_controller_revision, namespace, body)

    async def get_revision(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = await self._maybe(self._apps.read_namespaced_controller_revision, name, namespace)
        return None if found is None else self._plain(found)

    async def list_revisions(self, namespace: str, template: str) -> list[dict[str, Any]]:
        listing = await self._call(
            self._apps.list_namespaced_controller_revision,
            namespace,
            label_selector=f"{TEMPLATE_LABEL}={template}",
        )
        return [self._plain(item) for item in listing.items]

    async def delete_revision(self, namespace: str, name: str) -> None:
        await self._maybe(self._apps.delete_namespaced_controller_revision, name, namespace)


class ScheduleApi(_CustomObjects):
    CUSTOM_PLURAL = SCHEDULES

    async def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._maybe(
            self._custom.get_namespaced_custom_object, *_schedules(namespace, name)
        )
        return found

    async def list_schedules(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            listing = await self._call(
                self._custom.list_cluster_custom_object, GROUP, VERSION, SCHEDULES
            )
        else:
            listing = await self._call(
                self._custom.list_namespaced_custom_object, *_schedules(namespace)
            )
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    async def create_schedule(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            self._custom.create_namespaced_custom_object, GROUP, VERSION, namespace, SCHEDULES, body
        )
        return created

    async def replace_schedule(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        replaced: dict[str, Any] = await self._call(
            self._custom.replace_namespaced_custom_object, *_schedules(namespace, name), body
        )
        return replaced

    async def patch_schedule(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        patched: dict[str, Any] | None = await self._maybe(
            self._custom.patch_namespaced_custom_object, *_schedules(namespace, name), patch
        )
        return patched

    async def patch_schedule_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A merge patch of the status; with `metadata.resourceVersion` in it, a
        KubeConflictError if the schedule changed since."""
        patched: dict[str, Any] | None = await self._maybe(
            self._custom.patch_namespaced_custom_object_status,
            *_schedules(namespace, name),
            patch,
        )
        return patched

    async def delete_schedule(self, namespace: str, name: str) -> bool:
        deleted = await self._maybe(
            self._custom.delete_namespaced_custom_object, *_schedules(namespace, name)
        )
        return deleted is not None
