"""Workflow templates: `PUT /templates/{name}` (create or replace: a changed spec is a new
revision), read, list, read a revision, delete. The verbs are those on `workflowtemplates`
(api/auth): a PUT needs both `create` and `update`, as it does either."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from stageflow.api.auth import (
    MayCreateTemplate,
    MayDeleteTemplate,
    MayGetTemplate,
    MayListTemplates,
    MayUpdateTemplate,
)
from stageflow.api.deps import BackendDep
from stageflow.api.guards import GuardedRoute
from stageflow.models.api import ErrorBody
from stageflow.models.template import (
    TemplateList,
    TemplateName,
    TemplateRecord,
    WorkflowTemplateSpec,
)

router = APIRouter(tags=["templates"], route_class=GuardedRoute)

NameDep = Annotated[TemplateName, Path(description="The template's name (a DNS label).")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorBody, "description": "Template not found"}
}


@router.put(
    "/templates/{name}",
    responses={
        status.HTTP_201_CREATED: {"model": TemplateRecord, "description": "Created (revision 1)"},
        status.HTTP_400_BAD_REQUEST: {"model": ErrorBody, "description": "It does not validate"},
    },
    response_model_exclude_none=True,
)
async def put_template(
    _: MayCreateTemplate,
    __: MayUpdateTemplate,
    name: NameDep,
    body: WorkflowTemplateSpec,
    backend: BackendDep,
    response: Response,
) -> TemplateRecord:
    """Create or replace a template; validated exactly as a submission is (with its
    defaults, required params standing in). 201 when created, 200 when replaced: an
    unchanged spec keeps its revision, a changed one gets the next."""
    record, created = await backend.catalog.put_template(name, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return record


@router.get("/templates", response_model_exclude_none=True)
async def list_templates(_: MayListTemplates, backend: BackendDep) -> TemplateList:
    """Every template of the namespace, by name, each at its current revision."""
    return TemplateList(items=await backend.catalog.templates.list())


@router.get("/templates/{name}", responses=NOT_FOUND, response_model_exclude_none=True)
async def get_template(_: MayGetTemplate, name: NameDep, backend: BackendDep) -> TemplateRecord:
    """The template's current revision, and which revisions are still readable."""
    return await backend.catalog.template(name)


@router.get(
    "/templates/{name}/revisions/{revision}", responses=NOT_FOUND, response_model_exclude_none=True
)
async def get_template_revision(
    _: MayGetTemplate,
    name: NameDep,
    revision: Annotated[int, Path(ge=1)],
    backend: BackendDep,
) -> TemplateRecord:
    """One revision, while it is kept (STAGEFLOW_TEMPLATE_REVISION_HISTORY, 10 by default)."""
    return await backend.catalog.template(name, revision)


@router.delete("/templates/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_template(_: MayDeleteTemplate, name: NameDep, backend: BackendDep) -> None:
    """Delete the template and its revisions; runs made from it keep what they ran."""
    await backend.catalog.delete_template(name)
