"""The OpenAPI document a client generator is happy with, and /docs that works offline.

Applied in one place rather than route by route: stable operationIds (from each
route's name, `OPERATION_IDS`), an example for every request and response, the error
responses every operation can give with their schema, and a description on every
field of every schema (`FIELD_DOCS`, for the models that do not carry their own).
/docs is FastAPI's Swagger UI page with its script and style served from the package
(swagger-ui-dist, vendored in api/ui/static/swagger with its licence): no CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

SWAGGER = "/ui/static/swagger"

OPERATION_IDS = {
    "submit_workflow": "submitWorkflow",
    "get_workflow": "getWorkflow",
    "list_workflows": "listWorkflows",
    "cancel_workflow": "cancelWorkflow",
    "delete_workflow": "deleteWorkflow",
    "workflow_status": "getWorkflowStatus",
    "workflow_events": "streamWorkflowEvents",
    "task_logs": "getTaskLogs",
    "list_tasks": "listTasks",
    "healthz": "getHealth",
    "readyz": "getReadiness",
}


def operation_id(route: APIRoute) -> str:
    """The route's stable operationId: named in OPERATION_IDS, else its name in camelCase."""
    if route.name in OPERATION_IDS:
        return OPERATION_IDS[route.name]
    head, *rest = route.name.split("_")
    return head + "".join(part.title() for part in rest)


RUN_ID = "3f2b8c1e-5d4a-4f7b-9c2e-8a1d6e0b4c3f"
STARTED, FINISHED = "2026-11-22T06:30:00.120000Z", "2026-11-22T06:30:02.480000Z"
SEED = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}
DAG = {
    "name": "nightly",
    "dag": [
        {"name": "extract", "task": "echo", "params": {"rows": 3}},
        {"name": "report", "task": "task_c", "dependsOn": ["extract"], "retries": 2},
    ],
}
TASK_STATUS = {
    "phase": "Succeeded",
    "attempts": 1,
    "startedAt": STARTED,
    "finishedAt": FINISHED,
    "executor": "inprocess",
}
RUN_STATUS = {
    "phase": "Succeeded",
    "progress": "3/3",
    "startedAt": STARTED,
    "finishedAt": FINISHED,
    "tasks": {name: TASK_STATUS for name in ("task_a", "task_b", "task_c")},
}
RUN_RECORD = {
    "run_id": RUN_ID,
    "labels": {},
    "created_at": STARTED,
    "spec": {
        "workflow": [
            {"type": "parallel", "tasks": [{"name": "task_a", "task": "task_a"}]},
            {"type": "sequential", "tasks": [{"name": "task_c", "task": "task_c"}]},
        ]
    },
    "status": RUN_STATUS,
    "cancel_requested": False,
}
SUMMARY = {
    "run_id": RUN_ID,
    "name": "nightly",
    "labels": {"team": "data"},
    "created_at": STARTED,
    "phase": "Running",
    "progress": "1/3",
    "started_at": STARTED,
}
EVENTS = (
    f'event: snapshot\ndata: {{"run_id": "{RUN_ID}", ...}}\n\n'
    f'event: update\ndata: {{"run_id": "{RUN_ID}", "phase": "Running", "progress": "1/3", '
    '"tasks": {"task_a": {"phase": "Succeeded", "attempts": 1}}}\n\n'
)

# operationId -> status -> example of its response body (media type: the route's own).
RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "submitWorkflow": {"202": {"run_id": RUN_ID, "status": "Pending"}},
    "getWorkflow": {"200": RUN_RECORD},
    "listWorkflows": {"200": {"items": [SUMMARY], "next_cursor": None}},
    "cancelWorkflow": {"202": {"run_id": RUN_ID, "status": "Running"}},
    "retryWorkflow": {"202": {"run_id": RUN_ID, "status": "Pending"}},
    "suspendWorkflow": {"202": {"run_id": RUN_ID, "status": "Running"}},
    "approveTask": {"202": {"run_id": RUN_ID, "status": "Running"}},
    "rejectTask": {"202": {"run_id": RUN_ID, "status": "Running"}},
    "resumeWorkflow": {"202": {"run_id": RUN_ID, "status": "Running"}},
    "getWorkflowStatus": {"200": {"task_a": "Succeeded", "task_b": "Running", "task_c": "Pending"}},
    "streamWorkflowEvents": {"200": EVENTS},
    "getTaskLogs": {"200": "--- attempt 1 ---\nRunning task A\n"},
    "listTasks": {
        "200": [
            {
                "name": "sleep",
                "description": "Sleep for `seconds`.",
                "parameters": ["seconds"],
                "is_async": True,
            }
        ]
    },
    "getHealth": {"200": {"status": "ok", "checks": {}}},
    "getReadiness": {
        "200": {"status": "ok", "checks": {"store": "ok"}},
        "503": {"status": "unavailable", "checks": {"error": "ConnectionError: refused"}},
    },
}

# operationId -> examples of its request body (the workflow's, unless named here).
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "submitWorkflow": {
        "stages": {"summary": "The seed's stages", "value": SEED},
        "dag": {"summary": "A DAG with a retry", "value": DAG},
    },
    "cancelWorkflow": {
        "plain": {
            "summary": "Cancel; the finally tasks still run (no body does the same)",
            "value": {},
        },
        "force": {"summary": "Cancel the finally tasks too", "value": {"force": True}},
    },
    "approveTask": {
        "plain": {"summary": "Approve (no body does the same)", "value": {}},
        "outputs": {
            "summary": "Approve with what the task's inputs ask for",
            "value": {"comment": "ship it", "outputs": {"version": "1.4.2"}},
        },
    },
    "rejectTask": {
        "plain": {"summary": "Reject (no body does the same)", "value": {}},
        "comment": {"summary": "Reject, saying why", "value": {"comment": "not on a Friday"}},
    },
    "retryWorkflow": {
        "failure": {"summary": "Re-run what failed (no body does the same)", "value": {}},
        "from": {
            "summary": "Re-run `extract` and all after it, with a run parameter changed",
            "value": {"from": "extract", "params": {"day": "2026-12-05"}},
        },
    },
}

ERRORS = {
    "408": (
        "The request body did not arrive in time",
        "Request body not received within 10s (STAGEFLOW_BODY_READ_TIMEOUT_SECONDS)",
    ),
    "429": (
        "Too many event streams from this client",
        "Too many open event streams from this client (STAGEFLOW_MAX_STREAMS_PER_CLIENT)",
    ),
    "400": (
        "Bad request: the workflow cannot run, or a parameter is invalid",
        "Unknown task: nope",
    ),
    "401": (
        "No or an invalid bearer token (auth modes `token`, `kubernetes`)",
        "Not authenticated: send `Authorization: Bearer <token>`",
    ),
    "403": (
        "The caller may not do this verb on workflowruns",
        "Forbidden: vera may not create workflowruns.stageflow.dev in namespace default",
    ),
    "404": ("No such run (or task)", "Workflow not found"),
    "409": (
        "The run is not in a phase the action applies to",
        "Workflow already finished (Succeeded)",
    ),
    "413": ("The request body is too large", "Request body too large"),
    "503": (
        "The run store or the Kubernetes API cannot answer now",
        "Run store unavailable: Connection refused",
    ),
}
AUTHENTICATED = ("401", "403", "503")
OPERATION_ERRORS = {
    "submitWorkflow": ("400", "413"),
    "getWorkflow": ("404",),
    "listWorkflows": ("400",),
    "cancelWorkflow": ("404", "409"),
    "retryWorkflow": ("400", "404", "409"),
    "suspendWorkflow": ("404", "409"),
    "approveTask": ("400", "404", "409"),
    "rejectTask": ("400", "404", "409"),
    "resumeWorkflow": ("404", "409"),
    "deleteWorkflow": ("404",),
    "getWorkflowStatus": ("404",),
    "streamWorkflowEvents": ("404",),
    "getTaskLogs": ("404",),
    "listTasks": (),
}
VALIDATION_EXAMPLE = {
    "detail": [
        {"type": "missing", "loc": ["body", "workflow"], "msg": "Field required", "input": {}}
    ]
}

FIELD_DOCS: dict[str, dict[str, str]] = {
    "Submitted": {"status": "The run's phase when the answer was made."},
    "RunList": {"items": "One page of runs, newest first."},
    "Health": {
        "status": "`ok`, or `unavailable` when a dependency cannot serve.",
        "checks": "Each dependency's state, by name.",
    },
    "TaskInfo": {
        "name": "The name a workflow's `task` field uses.",
        "description": "What the task does (its docstring).",
        "parameters": "The parameters it takes (`params` keys).",
        "is_async": "Runs on the event loop (true) or in a thread (false).",
    },
    "RunRecord": {
        "run_id": "The run's ID (a UUID).",
        "name": "The workflow's `name`, if it had one.",
        "labels": "The workflow's `labels`.",
        "created_at": "When the run was accepted (UTC, RFC 3339).",
        "spec": "The workflow as submitted, normalised: every task an object with its `name`.",
        "status": "The run's phase and each task's detail.",
        "cancel_requested": "A cancel was asked for (the run may still be stopping).",
    },
    "RunSummary": {
        "run_id": "The run's ID (a UUID).",
        "namespace": "The WorkflowRun's namespace (kubernetes backend).",
        "name": "The workflow's `name`, if it had one.",
        "labels": "The workflow's `labels`.",
        "created_at": "When the run was accepted (UTC).",
        "phase": "The run's phase.",
        "progress": "Finished tasks / all tasks, e.g. `2/3`.",
        "started_at": "When its first task started.",
        "finished_at": "When it ended.",
        "message": "Why it failed or was cancelled.",
    },
    "RunStatus": {
        "phase": "The run's phase.",
        "progress": "Finished tasks / all tasks, e.g. `2/3`.",
        "startedAt": "When its first task started (UTC).",
        "finishedAt": "When it ended (UTC).",
        "message": "Why it failed or was cancelled.",
        "tasks": "Each task's status, by task id (forEach instances as `NAME[i]`).",
    },
    "TaskStatus": {
        "phase": "The task's phase.",
        "attempts": "Attempts started so far, in every run of the task (a retried run's too).",
        "attemptsBefore": "Attempts before the current run of attempts: `retries` counts "
        "from here (after a retry of the run, or an `until` iteration).",
        "startedAt": "When its first attempt started (UTC).",
        "finishedAt": "When it ended (UTC).",
        "message": "Why it failed, was skipped or cancelled; or its retry.",
        "executor": "What ran it: `inprocess` or `job`.",
        "jobName": "Its Kubernetes Job (executor `job`).",
        "outputs": "What it returned (a JSON object), for tasks after it.",
        "iterations": "Iterations of its `until` loop so far.",
        "whenResult": "What its `when` condition gave.",
        "nextAttemptAt": "When its next attempt is due, while it waits out a retry's backoff.",
        "decision": "An approval task's answer: who, when, their comment and outputs.",
    },
    "TaskSpec": {
        "params": "Keyword arguments of the task; `{{ }}` references other tasks' outputs.",
        "retries": "Attempts after the first when it fails.",
        "retryBackoffSeconds": "Wait before the first retry; doubles each time.",
        "timeoutSeconds": "An attempt running longer fails.",
        "image": "A container image: the task runs as a Kubernetes Job.",
        "command": "The container's command (executor `job`).",
        "args": "The container's arguments (executor `job`).",
        "resources": "The container's resource requests and limits (executor `job`).",
    },
    "Stage": {
        "type": "`parallel`: its tasks run at once; `sequential`: one after another.",
        "tasks": "Task names, or task objects.",
    },
    "WorkflowRequest": {
        "labels": "Labels to find the run by.",
        "timeoutSeconds": "The whole run fails after this long.",
        "ttlSecondsAfterFinished": "How long the finished run is kept.",
        "workflow": "Stages, run in order (the seed's format). Give this or `dag`.",
        "dag": "Tasks with `dependsOn`. Give this or `workflow`.",
    },
    "EnvFrom": {"valueFrom": "Where the value comes from (a Secret key)."},
    "EnvValueSource": {"secretKeyRef": "A key of a Secret in the run's namespace."},
    "SecretKeyRef": {
        "name": "The Secret's name.",
        "key": "The key in the Secret.",
        "optional": "Start even when the Secret or key is missing.",
    },
    "HTTPValidationError": {"detail": "Each problem with the request."},
    "ValidationError": {
        "loc": "Where the problem is: `body`, then the path into it.",
        "msg": "What is wrong.",
        "type": "The kind of problem.",
        "input": "The value that was refused.",
        "ctx": "Details of the rule that was broken.",
    },
}

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "What is wrong, in words."}},
}


def _document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for name, fields in FIELD_DOCS.items():
        properties = components.get(name, {}).get("properties", {})
        for field, text in fields.items():
            if field in properties:
                properties[field].setdefault("description", text)
    for operations in schema["paths"].values():
        for operation in operations.values():
            _complete(operation)
    return schema


def _complete(operation: dict[str, Any]) -> None:
    op_id = operation["operationId"]
    responses = operation["responses"]
    for code, example in RESPONSE_EXAMPLES.get(op_id, {}).items():
        for media in responses.get(code, {}).get("content", {}).values():
            media.setdefault("example", example)
    errors = OPERATION_ERRORS.get(op_id)
    if errors is not None:
        for code in (*errors, *AUTHENTICATED):
            description, detail = ERRORS[code]
            entry = responses.setdefault(code, {"description": description})
            entry["content"] = {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "example": {"detail": detail},
                }
            }
    for code, response in responses.items():  # errors a route lists itself, e.g. 408 or 429
        if code in ERRORS:
            for media in response.get("content", {}).values():
                media.setdefault("example", {"detail": ERRORS[code][1]})
    if "422" in responses:
        for media in responses["422"].get("content", {}).values():
            media.setdefault("example", VALIDATION_EXAMPLE)
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        body.setdefault("examples", REQUEST_EXAMPLES.get(op_id, REQUEST_EXAMPLES["submitWorkflow"]))


def install(app: FastAPI) -> None:
    """The completed document at /openapi.json and the offline Swagger UI at /docs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        )
