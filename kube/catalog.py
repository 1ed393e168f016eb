"""The template and schedule repositories of the kubernetes backend (store/catalog.py's
protocols over WorkflowTemplate, ControllerRevision and Schedule objects), used by the API
and by the operator's scheduler alike."""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from stageflow.kube.catalog_api import SCHEDULES, TEMPLATE_LABEL, TEMPLATES
from stageflow.kube.errors import KubeConflictError
from stageflow.kube.resource import API_VERSION
from stageflow.models.schedule import ScheduleRecord, ScheduleSpec, ScheduleStatus
from stageflow.models.status import parse_timestamp, utcnow
from stageflow.models.template import TemplateRecord, WorkflowTemplateSpec
from stageflow.store.catalog import DEFAULT_REVISION_HISTORY

if TYPE_CHECKING:
    from stageflow.kube.client import KubeClient

logger = logging.getLogger(__name__)
_CONFLICT_ATTEMPTS = 5
TEMPLATE_KIND = "WorkflowTemplate"
SCHEDULE_KIND = "Schedule"


class InvalidTemplateError(ValueError):
    """A stored template whose spec does not validate (written with kubectl)."""


def revision_name(template: str, revision: int) -> str:
    return f"{template}-{revision}"


def template_spec_of(obj: dict[str, Any]) -> WorkflowTemplateSpec:
    try:
        return WorkflowTemplateSpec.model_validate(obj.get("spec") or {})
    except ValidationError as error:
        name = obj["metadata"]["name"]
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidTemplateError(
            f"Template {name} is not valid: spec.{where}: {first['msg']}"
        ) from None


class TemplateRevisions:
    """Reading templates and keeping their revisions: all the operator does with them (the
    API's KubeTemplates adds writing). See kube/catalog_api.py for how revisions are kept."""

    def __init__(
        self, kube: KubeClient, namespace: str, *, keep: int = DEFAULT_REVISION_HISTORY
    ) -> None:
        self._kube, self._namespace, self._keep = kube, namespace, keep

    async def snapshot(self, obj: dict[str, Any]) -> TemplateRecord:
        """Keep the object's current revision (once: a second writer finds it there) and
        write its revision and digest into its status; prune what is past the history.
        Called by the API after its writes, and by the operator for what it observes."""
        metadata = obj["metadata"]
        name, revision = metadata["name"], int(metadata.get("generation") or 1)
        spec = template_spec_of(obj)
        record = _template_record(obj, spec)
        status = obj.get("status") or {}
        if status.get("revision") != revision or status.get("digest") != record.digest:
            await self._keep_revision(name, metadata.get("uid"), record)
            await self._kube.patch_template_status(
                self._namespace, name, {"status": {"revision": revision, "digest": record.digest}}
            )
        return record.model_copy(update={"revisions": await self._revisions(name)})

    async def get(self, name: str, revision: int | None = None) -> TemplateRecord | None:
        obj = await self._kube.get_template(self._namespace, name)
        if obj is None:
            return None
        current = int(obj["metadata"].get("generation") or 1)
        if revision is None or revision == current:
            record = _template_record(obj, template_spec_of(obj))
        else:
            kept = await self._kube.get_revision(self._namespace, revision_name(name, revision))
            if kept is None:
                return None
            record = TemplateRecord.model_validate(kept["data"])
        return record.model_copy(update={"revisions": await self._revisions(name)})

    async def list(self) -> list[TemplateRecord]:
        records = []
        for obj in await self._kube.list_templates(self._namespace):
            try:
                records.append(_template_record(obj, template_spec_of(obj)))
            except InvalidTemplateError as error:
                logger.warning("%s", error)
        return sorted(records, key=lambda record: record.name)

    async def _keep_revision(self, name: str, uid: str | None, record: TemplateRecord) -> None:
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": revision_name(name, record.revision),
                "namespace": self._namespace,
                "labels": {TEMPLATE_LABEL: name},
            },
            "revision": record.revision,
            "data": record.to_json_dict(),
        }
        if uid:
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": API_VERSION, "kind": TEMPLATE_KIND, "name": name, "uid": uid}
            ]
        try:
            await self._kube.create_revision(self._namespace, body)
        except KubeConflictError:  # kept already; or left by a deleted template of that name
            found = await self._kube.get_revision(self._namespace, body["metadata"]["name"])
            owners = ((found or {}).get("metadata") or {}).get("ownerReferences") or []
            if found is not None and uid and all(owner.get("uid") != uid for owner in owners):
                await self._kube.delete_revision(self._namespace, body["metadata"]["name"])
                await self._kube.create_revision(self._namespace, body)
        listed = await self._kube.list_revisions(self._namespace, name)
        numbers = sorted(int(item.get("revision") or 0) for item in listed)
        for old in numbers[: -self._keep]:
            await self._kube.delete_revision(self._namespace, revision_name(name, old))

    async def _revisions(self, name: str) -> builtins.list[int]:  # `list` is a method here
        kept = await self._kube.list_revisions(self._namespace, name)
        return sorted(int(item.get("revision") or 0) for item in kept)


class KubeTemplates(TemplateRevisions):
    """The API's TemplateRepo: TemplateRevisions, and writing templates."""

    async def put(self, name: str, spec: WorkflowTemplateSpec) -> tuple[TemplateRecord, bool]:
        body = spec.normalised_json()
        for _ in range(_CONFLICT_ATTEMPTS):
            current = await self._kube.get_template(self._namespace, name)
            try:
                if current is None:
                    obj = await self._kube.create_template(
                        self._namespace,
                        {
                            "apiVersion": API_VERSION,
                            "kind": TEMPLATE_KIND,
                            "metadata": {"name": name, "namespace": self._namespace},
                            "spec": body,
                        },
                    )
                    return await self.snapshot(obj), True
                if _digest_of(current) == spec.digest():  # no change, however it was written
                    return await self.snapshot(current), False
                obj = await self._kube.replace_template(
                    self._namespace, name, {**current, "spec": body}
                )
                return await self.snapshot(obj), False
            except KubeConflictError:
                continue  # written meanwhile: read it again
        raise KubeConflictError(f"Template {name} kept changing; try again", 409)

    async def delete(self, name: str) -> bool:
        return await self._kube.delete_template(self._namespace, name)


def _digest_of(obj: dict[str, Any]) -> str | None:
    try:
        return template_spec_of(obj).digest()
    except InvalidTemplateError:
        return None


def _template_record(obj: dict[str, Any], spec: WorkflowTemplateSpec) -> TemplateRecord:
    metadata = obj["metadata"]
    return TemplateRecord(
        name=metadata["name"],
        namespace=metadata.get("namespace"),
        revision=int(metadata.get("generation") or 1),
        digest=spec.digest(),
        created_at=parse_timestamp(metadata.get("creationTimestamp")) or utcnow(),
        spec=spec,
    )


def schedule_record(obj: dict[str, Any]) -> ScheduleRecord:
    """A Schedule object as a record (ValidationError if its spec does not validate)."""
    metadata = obj["metadata"]
    return ScheduleRecord(
        name=metadata["name"],
        namespace=metadata.get("namespace"),
        uid=metadata.get("uid") or metadata["name"],
        created_at=parse_timestamp(metadata.get("creationTimestamp")) or utcnow(),
        version=metadata.get("resourceVersion"),
        spec=ScheduleSpec.model_validate(obj.get("spec") or {}),
        status=ScheduleStatus.model_validate(obj.get("status") or {}),
    )


class ScheduleStates:
    """Reading schedules, suspending them and writing their status: all the operator's
    scheduler does (the API's KubeSchedules adds writing specs). `namespace` None: every
    namespace (an operator that watches all)."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self._kube, self._namespace = kube, namespace

    def _in(self, record: ScheduleRecord | None = None) -> str:
        namespace = (record.namespace if record is not None else None) or self._namespace
        assert namespace is not None, "a schedule's namespace"
        return namespace

    async def get(self, name: str) -> ScheduleRecord | None:
        obj = await self._kube.get_schedule(self._in(), name)
        return None if obj is None else schedule_record(obj)

    async def list(self) -> list[ScheduleRecord]:
        records = []
        for obj in await self._kube.list_schedules(self._namespace):
            try:
                records.append(schedule_record(obj))
            except ValidationError as error:
                logger.warning("schedule %s is not valid: %s", obj["metadata"]["name"], error)
        return sorted(records, key=lambda record: (record.namespace or "", record.name))

    async def set_suspend(self, name: str, suspend: bool) -> ScheduleRecord | None:
        return await self._set_suspend(self._in(), name, suspend)

    async def suspend(self, record: ScheduleRecord, reason: str) -> None:
        await self._set_suspend(self._in(record), record.name, True)

    async def _set_suspend(self, namespace: str, name: str, suspend: bool) -> ScheduleRecord | None:
        obj = await self._kube.patch_schedule(namespace, name, {"spec": {"suspend": suspend}})
        return None if obj is None else schedule_record(obj)

    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        patch = {
            "metadata": {"resourceVersion": record.version},
            # every field, None ones as null: a merge patch removes what is no longer set
            "status": {
                **status.model_dump(mode="json", by_alias=True),
                "activeCount": len(status.active),  # for `kubectl get schedules`
            },
        }
        try:
            written = await self._kube.patch_schedule_status(self._in(record), record.name, patch)
        except KubeConflictError:
            return False
        return written is not None


class KubeSchedules(ScheduleStates):
    """The API's ScheduleRepo: ScheduleStates, and writing specs."""

    async def put(self, name: str, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        body = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        namespace = self._in()
        for _ in range(_CONFLICT_ATTEMPTS):
            current = await self._kube.get_schedule(namespace, name)
            try:
                if current is None:
                    obj = await self._kube.create_schedule(
                        namespace,
                        {
                            "apiVersion": API_VERSION,
                            "kind": SCHEDULE_KIND,
                            "metadata": {"name": name, "namespace": namespace},
                            "spec": body,
                        },
                    )
                    return schedule_record(obj), True
                obj = await self._kube.replace_schedule(namespace, name, {**current, "spec": body})
                return schedule_record(obj), False
            except KubeConflictError:
                continue
        raise KubeConflictError(f"Schedule {name} kept changing; try again", 409)

    async def delete(self, name: str) -> bool:
        return await self._kube.delete_schedule(self._in(), name)


__all__ = [
    "SCHEDULES",
    "TEMPLATES",
    "InvalidTemplateError",
    "KubeSchedules",
    "KubeTemplates",
    "ScheduleStates",
    "TemplateRevisions",
]
