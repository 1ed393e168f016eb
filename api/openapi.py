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
TEMPLATE_SPEC: dict[str, Any] = {
    "name": "nightly",
    "labels": {"team": "data"},
    "params": {
        "region": {"description": "Where to report on (no default: a run must give it)"},
        "rows": {"description": "How many rows to extract", "default": 3},
    },
    "dag": [
        {
            "name": "extract",
            "task": "echo",
            "params": {"region": "{{ params.region }}", "rows": "{{ params.rows }}"},
        },
        {"name": "report", "task": "task_c", "dependsOn": ["extract"], "retries": 2},
    ],
}
TEMPLATE_RECORD: dict[str, Any] = {
    "name": "nightly",
    "revision": 3,
    "digest": "sha256:82b7cb488c8144ba021cc15fd84a928db0175ae23c3d776edb565c1b8dbc8a1b",
    "created_at": "2026-11-10T08:12:04.518000Z",
    "updated_at": "2026-11-21T16:40:51.207000Z",
    "spec": TEMPLATE_SPEC,
    "revisions": [1, 2, 3],
}
TEMPLATE_REVISION = {  # revision 2: `report` without its retries
    **TEMPLATE_RECORD,
    "revision": 2,
    "digest": "sha256:7d1a58c2f2b77c7dec5da934d8fb4e4c0b931164b69555ebee5aef7729c38bdb",
    "updated_at": "2026-11-14T11:03:27.880000Z",
    "spec": {
        **TEMPLATE_SPEC,
        "dag": [
            TEMPLATE_SPEC["dag"][0],
            {"name": "report", "task": "task_c", "dependsOn": ["extract"]},
        ],
    },
}
SCHEDULE_SPEC = {
    "schedule": ["0 2 * * *"],
    "timezone": "Europe/Berlin",
    "templateRef": {"name": "nightly"},
    "params": {"region": "eu"},
    "labels": {"team": "data"},
    "overlapPolicy": "Skip",
    "catchupWindowSeconds": 3600,
    "pauseOnFailure": True,
}
SCHEDULE_RECORD: dict[str, Any] = {
    "name": "nightly",
    "uid": "9b1e4c2a-7f3d-4e8b-a6c5-2d0f1e3b7a94",
    "created_at": "2026-11-10T08:15:22.304000Z",
    "version": "37",
    "spec": {  # as the API answers: every field, defaults too
        **SCHEDULE_SPEC,
        "suspend": False,
        "jitterSeconds": 0,
        "successfulRunsHistoryLimit": 3,
        "failedRunsHistoryLimit": 1,
    },
    "status": {
        "lastScheduledTime": "2026-11-22T01:00:00.000000Z",
        "nextScheduledTime": "2026-11-23T01:00:00.000000Z",
        "active": [],
        "recent": [
            {
                "runId": run_id,
                "scheduledTime": f"2026-11-{day}T01:00:00.000000Z",
                "phase": "Succeeded",
            }
            for run_id, day in (
                ("c0a8f1d2-64e3-5b7a-9d41-0e2f7b6c5a18", 22),
                ("5d3e9b07-2a1c-5f48-8e6d-b4c7a2913f05", 21),
                ("e71b4a6c-9f02-5d3e-a8b5-16c4d0f2e97a", 20),
            )
        ],
        "pending": [],
        "lastRunPhase": "Succeeded",
        "fired": 11,
        "skipped": 0,
        "missed": 1,
    },
}
SCHEDULE_PAUSED = {
    **SCHEDULE_RECORD,
    "version": "38",
    "spec": {**SCHEDULE_RECORD["spec"], "suspend": True},
}
SCHEDULE_CREATED = {
    **SCHEDULE_RECORD,
    "created_at": "2026-11-22T06:30:00.120000Z",
    "version": "1",
    "status": {"active": [], "recent": [], "pending": [], "fired": 0, "skipped": 0, "missed": 0},
}
BACKFILL = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-04T00:00:00Z"}
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
    "putTemplate": {
        "200": TEMPLATE_RECORD,
        "201": {
            **TEMPLATE_RECORD,
            "revision": 1,
            "updated_at": TEMPLATE_RECORD["created_at"],
            "revisions": [1],
        },
    },
    "listTemplates": {"200": {"items": [TEMPLATE_RECORD]}},
    "getTemplate": {"200": TEMPLATE_RECORD},
    "getTemplateRevision": {"200": TEMPLATE_REVISION},
    "putSchedule": {"200": SCHEDULE_RECORD, "201": SCHEDULE_CREATED},
    "listSchedules": {"200": {"items": [SCHEDULE_RECORD]}},
    "getSchedule": {"200": SCHEDULE_RECORD},
    "pauseSchedule": {"200": SCHEDULE_PAUSED},
    "resumeSchedule": {"200": SCHEDULE_RECORD},
    "backfillSchedule": {
        "200": {
            "slots": [f"2026-11-0{day}T01:00:00.000000Z" for day in (1, 2, 3)],
            "queued": 3,
            "dry_run": False,
        }
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
        "template": {
            "summary": "Run revision 3 of the template `nightly` by reference",
            "value": {
                "templateRef": {"name": "nightly", "revision": 3},
                "params": {"region": "us", "rows": 10},
                "labels": {"requested-by": "vera"},
            },
        },
    },
    "putTemplate": {
        "dag": {
            "summary": "A DAG with declared params: `region` required, `rows` with a default",
            "value": TEMPLATE_SPEC,
        },
        "stages": {
            "summary": "Stages whose one param has a default",
            "value": {
                "params": {"seconds": {"description": "How long `wait` waits", "default": 1}},
                "workflow": [
                    {
                        "type": "parallel",
                        "tasks": [
                            {
                                "name": "wait",
                                "task": "sleep",
                                "params": {"seconds": "{{ params.seconds }}"},
                            },
                            "task_a",
                        ],
                    },
                    {"type": "sequential", "tasks": ["task_c"]},
                ],
            },
        },
    },
    "putSchedule": {
        "template": {
            "summary": "Run the template `nightly` at 02:00 Berlin time, skipping a slot while "
            "a run still goes",
            "value": SCHEDULE_SPEC,
        },
        "inline": {
            "summary": "An inline workflow every 15 minutes, one slot waiting at most",
            "value": {
                "schedule": ["*/15 * * * *"],
                "workflowSpec": SEED,
                "overlapPolicy": "BufferOne",
                "jitterSeconds": 30,
            },
        },
    },
    "backfillSchedule": {
        "queue": {
            "summary": "Fire the slots of three past days, one run after another",
            "value": {**BACKFILL, "overlapPolicy": "BufferAll"},
        },
        "dryRun": {
            "summary": "List the slots of the range; start nothing",
            "value": {**BACKFILL, "dryRun": True},
        },
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
    "putTemplate": ("400", "409", "413"),
    "listTemplates": (),
    "getTemplate": ("404",),
    "getTemplateRevision": ("404",),
    "deleteTemplate": ("404",),
    "putSchedule": ("400", "409", "413"),
    "listSchedules": (),
    "getSchedule": ("404",),
    "deleteSchedule": ("404",),
    "pauseSchedule": ("404",),
    "resumeSchedule": ("404",),
    "backfillSchedule": ("400", "404", "409"),
}
TEMPLATE_ERRORS = {
    "400": (
        "The template would not run (validated as a submission is); nothing is stored",
        "Template nightly: Unknown task: no_such_task",
    ),
    "404": ("No such template (or revision)", "Template nightly not found"),
    "409": (
        "The template kept changing under the write (kubernetes backend)",
        "Template nightly kept changing; try again",
    ),
}
SCHEDULE_ERRORS = {
    "400": (
        "A cron entry or time zone that does not parse, an unknown template, or what it runs "
        "would not run; nothing is stored",
        "Unknown time zone: Europe/Berln",
    ),
    "404": ("No such schedule", "Schedule nightly not found"),
    "409": (
        "The schedule kept changing under the write",
        "Schedule nightly kept changing; try again",
    ),
}


def _texts(
    errors: dict[str, tuple[str, str]], verb: str, resource: str
) -> dict[str, tuple[str, str]]:
    """`errors` with the 403 of `verb` on `resource` (auth mode `kubernetes`)."""
    forbidden = (
        f"The caller may not {verb} {resource}",
        f"Forbidden: vera may not {verb} {resource}.stageflow.dev in namespace default",
    )
    return {**errors, "403": forbidden}


# operationId -> the errors it describes otherwise than ERRORS (whose texts are a run's).
OPERATION_ERROR_TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "putTemplate": _texts(TEMPLATE_ERRORS, "create", "workflowtemplates"),
    "listTemplates": _texts(TEMPLATE_ERRORS, "list", "workflowtemplates"),
    "getTemplate": _texts(TEMPLATE_ERRORS, "get", "workflowtemplates"),
    "getTemplateRevision": _texts(
        {
            **TEMPLATE_ERRORS,
            "404": (
                "No such template, or the revision is no longer kept",
                "Template nightly revision 7 not found",
            ),
        },
        "get",
        "workflowtemplates",
    ),
    "deleteTemplate": _texts(TEMPLATE_ERRORS, "delete", "workflowtemplates"),
    "putSchedule": _texts(SCHEDULE_ERRORS, "create", "schedules"),
    "listSchedules": _texts(SCHEDULE_ERRORS, "list", "schedules"),
    "getSchedule": _texts(SCHEDULE_ERRORS, "get", "schedules"),
    "deleteSchedule": _texts(SCHEDULE_ERRORS, "delete", "schedules"),
    "pauseSchedule": _texts(SCHEDULE_ERRORS, "patch", "schedules"),
    "resumeSchedule": _texts(SCHEDULE_ERRORS, "patch", "schedules"),
    "backfillSchedule": _texts(
        {
            **SCHEDULE_ERRORS,
            "400": (
                "A reversed range, a time without an offset, or more than 1,000 slots; "
                "nothing is queued",
                "a backfill covers at most 1000 slots (MAX_BACKFILL_SLOTS); this range has more",
            ),
            "409": (
                "The scheduler kept writing the schedule's status meanwhile",
                "Schedule nightly kept changing; try the backfill again",
            ),
        },
        "patch",
        "schedules",
    ),
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
        "cached": "Succeeded by reusing a recorded result: nothing ran, attempts stay 0.",
        "cachedFrom": "The run and task whose recorded outputs it reused.",
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

# A template's spec is a workflow body whose `params` are declarations (its own description).
FIELD_DOCS["WorkflowTemplateSpec"] = dict(FIELD_DOCS["WorkflowRequest"])

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
    for name, schema_of in components.items():
        # a model with a custom serializer has two schemas, `X-Input` and `X-Output`
        fields = FIELD_DOCS.get(name.removesuffix("-Input").removesuffix("-Output"), {})
        properties = schema_of.get("properties", {})
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
    texts = {**ERRORS, **OPERATION_ERROR_TEXTS.get(op_id, {})}
    errors = OPERATION_ERRORS.get(op_id)
    if errors is not None:
        for code in (*errors, *AUTHENTICATED):
            description, detail = texts[code]
            entry = responses.setdefault(code, {"description": description})
            entry["content"] = {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "example": {"detail": detail},
                }
            }
    for code, response in responses.items():  # errors a route lists itself, e.g. 408 or 429
        if code in texts:
            for media in response.get("content", {}).values():
                media.setdefault("example", {"detail": texts[code][1]})
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
