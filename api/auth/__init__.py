"""Who may do what through the API: the auth modes and the routes' dependency.

`none` checks nothing (the default only on a loopback address), `token` reads bearer
tokens from a file, `kubernetes` asks the apiserver: a TokenReview says who the
caller is and a SubjectAccessReview on `workflowruns` (or `workflowtemplates`, `schedules`)
whether they may. Kubernetes
RBAC is then the whole policy; stageflow keeps no user database of its own.
"""

from stageflow.api.auth.dependency import (
    Authenticated,
    MayApprove,
    MayCreate,
    MayCreateSchedule,
    MayCreateTemplate,
    MayDelete,
    MayDeleteSchedule,
    MayDeleteTemplate,
    MayGet,
    MayGetSchedule,
    MayGetTemplate,
    MayList,
    MayListSchedules,
    MayListTemplates,
    MayPatch,
    MayPatchSchedule,
    MayUpdateSchedule,
    MayUpdateTemplate,
    ShowsEnv,
)
from stageflow.api.auth.model import ANONYMOUS, Authorizer, Principal, Verb
from stageflow.api.auth.redaction import REDACTED, redact_env
from stageflow.api.auth.settings import AuthConfigError, AuthSettings, make_authorizer

__all__ = [
    "ANONYMOUS",
    "REDACTED",
    "AuthConfigError",
    "AuthSettings",
    "Authenticated",
    "Authorizer",
    "MayApprove",
    "MayCreate",
    "MayCreateSchedule",
    "MayCreateTemplate",
    "MayDelete",
    "MayDeleteSchedule",
    "MayDeleteTemplate",
    "MayGet",
    "MayGetSchedule",
    "MayGetTemplate",
    "MayList",
    "MayListSchedules",
    "MayListTemplates",
    "MayPatch",
    "MayPatchSchedule",
    "MayUpdateSchedule",
    "MayUpdateTemplate",
    "Principal",
    "ShowsEnv",
    "Verb",
    "make_authorizer",
    "redact_env",
]
