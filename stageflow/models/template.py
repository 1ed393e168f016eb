"""Workflow templates: a workflow body kept under a name, with declared params, revised on
every change (docs/templates.md).

A template's spec is a `POST /workflow` body whose `params` are declarations instead of
values; a run by reference (`TemplateSubmission`) gives the values, and the run keeps the
resolved body together with the template's name, revision and digest (`RunOrigin`), so
editing or deleting the template never changes a run that exists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import Field, SerializerFunctionWrapHandler, StringConstraints, model_serializer

from stageflow.models.records import WireModel
from stageflow.models.request import Key, Model, WorkflowRequest
from stageflow.models.status import Timestamp

# A template's (and a schedule's) name: a DNS label, as it is also the value of a label
# on every run it makes (`stageflow.dev/template`, `stageflow.dev/schedule`).
TemplateName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
ParamName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
# Set on every run a schedule starts (RFC 3339), declared or not (docs/schedules.md).
SCHEDULED_TIME_PARAM = "scheduledTime"
# The label on every run a schedule starts (its value: the schedule's name).
SCHEDULE_LABEL = "stageflow.dev/schedule"


class TemplateParam(Model):
    """A declared param: with `default` the run may leave it out; without, it must give it."""

    description: str | None = Field(
        default=None, max_length=1024, description="What the param is for, for whoever runs it."
    )
    default: Any = Field(default=None, description="Leave out to make the param required.")

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set

    @model_serializer(mode="wrap")
    def _keep_a_null_default(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`default: null` is a default (the param is optional): kept in every dump, also
        those that leave out None fields, so a stored template reads back the same."""
        dumped: dict[str, Any] = handler(self)
        if not self.required and "default" not in dumped:
            dumped["default"] = None
        return dumped


class WorkflowTemplateSpec(WorkflowRequest):
    """A workflow body (either form, every feature of POST /workflow) whose `params` are
    declarations: name -> {description, default}."""

    params: dict[ParamName, TemplateParam] = Field(
        default_factory=dict, max_length=64, description="Declared params (a value is a run's)."
    )

    def normalised_json(self) -> dict[str, Any]:
        """The stored form: what the digest is taken of (a default given as null stays)."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"params"})
        body["params"] = {
            name: param.model_dump(mode="json", by_alias=True, exclude_unset=True)
            for name, param in sorted(self.params.items())
        }
        return body

    def digest(self) -> str:
        """sha256 of the normalised spec with sorted keys: equal specs, equal digests."""
        text = json.dumps(self.normalised_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def body(self, params: dict[str, Any]) -> WorkflowRequest:
        """The workflow body for a run with these (already resolved) param values."""
        fields = self.normalised_json()
        fields["params"] = params
        return WorkflowRequest.model_validate(fields)


class TemplateRef(Model):
    name: TemplateName = Field(description="The template's name.")
    revision: int | None = Field(
        default=None, ge=1, description="Leave out for the template's current revision."
    )


class TemplateSubmission(Model):
    """The other body of POST /workflow: run a template by reference."""

    template_ref: TemplateRef = Field(
        description="The template to run: its current revision, or the `revision` named."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Values of its params.")
    name: str | None = Field(default=None, max_length=253, description="A label for humans.")
    labels: dict[Key, Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=dict, max_length=64, description="Added to the template's labels."
    )


class TemplateRecord(WireModel):
    """A template as the API answers: its current spec, revision and digest (the envelope
    snake_case like a run's record; the spec camelCase as written)."""

    name: str = Field(description="The template's name (a DNS label).")
    namespace: str | None = Field(
        default=None, description="The WorkflowTemplate's namespace (kubernetes backend)."
    )
    revision: int = Field(description="Counts the changes of the spec, from 1.")
    digest: str = Field(description="sha256 of the normalised spec.")
    created_at: Timestamp | None = Field(
        default=None, description="When the template was created (UTC)."
    )
    updated_at: Timestamp | None = Field(
        default=None, description="When this revision was written (UTC)."
    )
    spec: WorkflowTemplateSpec = Field(description="This revision's spec, normalised.")
    revisions: list[int] = Field(
        default_factory=list, description="The revisions still readable, oldest first."
    )


class TemplateList(WireModel):
    items: list[TemplateRecord] = Field(
        description="Every template of the namespace, by name, each at its current revision."
    )
