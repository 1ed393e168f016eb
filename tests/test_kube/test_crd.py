"""crds/workflowrun.yaml and the Python models describe one shape: this fails when they drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from stageflow.engine import RunOptions, RunPhase, RunStatus, TaskPhase, TaskSpec, TaskStatus
from stageflow.kube import GROUP, KIND, PLURAL, VERSION, new_object, record_from_object
from stageflow.models.records import RunRecord
from stageflow.models.status import FoldedTasks

CRD = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "crds" / "workflowrun.yaml").read_text()
)
VERSION_SPEC = CRD["spec"]["versions"][0]
SCHEMA = VERSION_SPEC["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
STATUS = SCHEMA["properties"]["status"]


def aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_names() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], VERSION_SPEC["name"], names["plural"], names["kind"]) == (
        GROUP,
        VERSION,
        PLURAL,
        KIND,
    )
    assert names["shortNames"] == ["wfr"]
    assert names["categories"] == ["stageflow"]
    assert VERSION_SPEC["subresources"] == {"status": {}}


def test_spec_fields_are_the_request_models() -> None:
    forms = {"workflow", "dag", "finally", "cancelRequested", "forceCancel", "retryRequest"}
    forms |= {"suspend", "approvals"}
    assert set(SPEC["properties"]) == aliases(RunOptions) | forms
    task = SPEC["properties"]["dag"]["items"]
    assert set(task["properties"]) == aliases(TaskSpec)
    stage_task = SPEC["properties"]["workflow"]["items"]["properties"]["tasks"]["items"]
    assert stage_task == task
    assert SPEC["properties"]["finally"]["items"] == task


def test_status_fields_are_the_status_models() -> None:
    run_fields = aliases(RunStatus) | {"observedGeneration", "conditions"}
    # what a summary of a run adds (models/folding.py); never stored
    assert set(STATUS["properties"]) == run_fields - {"fanouts", "omitted"}
    task = STATUS["properties"]["tasks"]["additionalProperties"]
    assert set(task["properties"]) == aliases(TaskStatus)
    folded = STATUS["properties"]["folded"]["items"]
    assert set(folded["properties"]) == aliases(FoldedTasks)
    assert folded["properties"]["like"] == task
    assert task["properties"]["phase"]["enum"] == [phase.value for phase in TaskPhase]
    assert STATUS["properties"]["phase"]["enum"] == [phase.value for phase in RunPhase]


@pytest.mark.parametrize("column", ["Phase", "Progress", "Age"])
def test_printer_columns(column: str) -> None:
    columns = {c["name"]: c for c in VERSION_SPEC["additionalPrinterColumns"]}
    assert columns[column].get("priority", 0) == 0
    assert columns["Message"]["priority"] == 1


def test_a_record_survives_the_round_trip_through_an_object(tasks: Any) -> None:
    from stageflow.engine import WorkflowRequest, compile_workflow, initial_status
    from stageflow.models.status import utcnow

    plan = compile_workflow(
        WorkflowRequest.model_validate(
            {
                "name": "n",
                "labels": {"a": "b"},
                "workflow": [{"type": "parallel", "tasks": ["task_a"]}],
            }
        ),
        registry=tasks,
    )
    record = RunRecord(
        run_id="r1",
        created_at=utcnow(),
        spec=plan.spec,
        status=initial_status(plan),
        name="n",
        labels={"a": "b"},
    )
    obj = new_object(record, "ns")
    obj["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z"
    back = record_from_object(obj)
    assert back.spec == record.spec
    assert back.created_at == record.created_at  # the annotation keeps microseconds
    assert back.namespace == "ns"
    assert back.status.task_phases() == {"task_a": "Pending"}


BOUNDS = ("minLength", "maxLength", "minItems", "maxItems", "maxProperties", "minimum", "maximum")


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """The size and range bounds a property states (unwrapping pydantic's `X | None`)."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    found: dict[str, Any] = {}
    for branch in branches:
        found |= {key: branch[key] for key in BOUNDS if key in branch}
        if branch.get("exclusiveMinimum") is True:  # OpenAPI v3.0's spelling in the CRD
            found["exclusiveMinimum"] = found.pop("minimum")
        elif "exclusiveMinimum" in branch:
            found["exclusiveMinimum"] = branch["exclusiveMinimum"]
        for nested in ("items", "additionalProperties"):
            if isinstance(branch.get(nested), dict):
                inner = {k: branch[nested][k] for k in BOUNDS if k in branch[nested]}
                if inner:
                    found[nested] = inner
    return found


@pytest.mark.parametrize(("model", "path"), [(RunOptions, ()), (TaskSpec, ("dag", "items"))])
def test_the_crd_states_the_bounds_the_models_enforce(
    model: type[BaseModel], path: tuple[str, ...]
) -> None:
    """Issue 10: every size limit a request model checks is in the CRD too (`kubectl apply`
    of a WorkflowRun goes through the CRD's schema, not through the API)."""
    crd = SPEC
    for key in path:
        crd = crd["properties"][key] if key in crd.get("properties", {}) else crd[key]
    properties = model.model_json_schema(by_alias=True)["properties"]
    for name, schema in properties.items():
        if "$ref" in schema or name not in crd["properties"]:
            continue
        assert _bounds(crd["properties"][name]) == _bounds(schema), name
