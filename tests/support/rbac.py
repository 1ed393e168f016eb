"""Every Kubernetes permission the operator and the API need, derived from their code.

Issue 14: the operator read its Jobs' pods, the chart's Role did not allow it, and
every Job task failed on a real cluster; a hand-kept permission list had the same
blind spot as the Role. So the list is derived from the code, never written by hand:
- which `KubeClient` methods `stageflow.api` and `stageflow.operator` call (their
  source, read with `ast`);
- which official API object each of those methods calls through: `KubeClient` is composed
  of one class per resource family (kube/run_api.py, kube/job_api.py, ...), each of which
  makes its API objects in its `_connect` (`self._custom = CustomObjectsApi(api)`); a
  method's `self._custom.…` is resolved against the classes it is defined in and under;
- which requests each of those methods makes: each official-client method it uses is
  called against a recording `ApiClient`, which gives the HTTP verb and path the
  client itself would send (so `read_namespaced_pod_log` is `GET …/pods/{name}/log`);
- what kopf does on the operator's behalf, from the operator's own kopf registry and
  settings: it lists and watches every resource a handler is registered for, patches
  the objects whose handlers keep state on them (finalizers, progress), and posts
  Events when posting is on.
The chart tests (tests/test_chart/test_rbac.py) and the real apiserver's can-i matrix
(tests/e2e/test_helm.py) both check against it.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client

from stageflow.kube import GROUP, PLURAL, KubeClient
from stageflow.operator.handlers import build_registry
from stageflow.operator.main import kopf_settings
from tests.support.paths import ROOT


@dataclass(frozen=True, order=True)
class Permission:
    """One RBAC grant: verb on group/resource (with its subresource, e.g. `pods/log`)."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


# -- what the official client sends for each of its methods --------------------------------

_READ_VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update"}
_API_GROUPS = {  # the group each client API class speaks for; a new class must be added here
    "CoreV1Api": "",
    "BatchV1Api": "batch",
    "CustomObjectsApi": GROUP,
    "VersionApi": None,  # /version: a non-resource URL every authenticated user may read
    "AuthenticationV1Api": "authentication.k8s.io",
    "AuthorizationV1Api": "authorization.k8s.io",
    "CoordinationV1Api": "coordination.k8s.io",
    "AppsV1Api": "apps",
    "EventsV1Api": "events.k8s.io",
}


class _SentError(Exception):
    def __init__(self, method: str, path: str) -> None:
        super().__init__(method, path)
        self.method, self.path = method, path


class _RecordingApiClient(kubernetes.client.ApiClient):
    """An ApiClient that stops each call at the request it would send."""

    def param_serialize(self, method: Any, resource_path: Any, *_: Any, **__: Any) -> Any:
        raise _SentError(str(method), str(resource_path))


def request_of(api_class: str, method: str) -> tuple[str, str]:
    """(HTTP method, path template) the client's `api_class.method` sends."""
    api = getattr(kubernetes.client, api_class)(api_client=_RecordingApiClient())
    function = getattr(api, method)
    required = [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    # the method without the client's argument validation (pydantic's validate_call wraps
    # it): dummy arguments reach the request it builds, whatever its body's model needs
    unvalidated = inspect.unwrap(getattr(type(api), method))
    try:
        unvalidated(api, *[{} if name == "body" else "x" for name in required])
    except _SentError as sent:
        return sent.method, sent.path
    raise AssertionError(f"{api_class}.{method} sent no request")


def permission_of(api_class: str, method: str, plural: str = PLURAL) -> Permission | None:
    """The RBAC permission a client call needs (None for a non-resource URL); `plural` is
    the custom resource a CustomObjectsApi call is made for (its `{plural}` argument)."""
    group = _API_GROUPS.get(api_class, "?")
    assert group != "?", f"add {api_class} to _API_GROUPS"
    if group is None:
        return None
    http, path = request_of(api_class, method)
    parts = path.strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]  # drop api/v1 or apis/group/version
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]  # namespaces/{namespace}/...
    resource = plural if parts[0] == "{plural}" else parts[0]
    named = len(parts) > 1 and parts[1].startswith("{")
    subresource = "/".join(parts[2:]) if named else ""
    if http == "GET":
        verb = "get" if named else "list"
    elif http == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _READ_VERBS[http]
    return Permission(group, resource + (f"/{subresource}" if subresource else ""), verb)


# -- which client methods our code uses --------------------------------------------------------


def _apis_made_by(cls: type) -> dict[str, str]:
    """The official API objects one class of KubeClient's makes in its own `_connect`:
    `_core` -> `CoreV1Api`."""
    connect = vars(cls).get("_connect")
    if connect is None:
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(inspect.getsource(connect).strip())):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Attribute)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr.endswith("Api")
        ):
            found[node.targets[0].attr] = node.value.func.attr
    return found


def _client_apis(cls: type) -> dict[str, str]:
    """The attributes holding an official API object that `cls`'s methods can reach: what
    `cls` and the classes under it make (for KubeClient itself: all of them). The same
    attribute made as two different API classes would overwrite one with the other on the
    composed client, so that fails here."""
    found: dict[str, str] = {}
    for base in cls.__mro__:
        for attribute, api_class in _apis_made_by(base).items():
            assert found.setdefault(attribute, api_class) == api_class, (
                f"{cls.__name__}.{attribute} is made as both {found[attribute]} and {api_class}"
            )
    return found


def _defined_in(name: str) -> type:
    """The class of KubeClient's MRO whose own code `KubeClient.name` is."""
    return next(cls for cls in KubeClient.__mro__ if name in vars(cls))


def kube_client_requests() -> dict[str, set[Permission]]:
    """KubeClient method -> the permissions it needs (with what the methods it calls need)."""
    _client_apis(KubeClient)  # no attribute made as two different API classes
    direct: dict[str, set[Permission]] = {}
    calls: dict[str, set[str]] = {}
    for name, function in inspect.getmembers(KubeClient, inspect.isfunction):
        owner = _defined_in(name)
        apis = _client_apis(owner)
        # the custom resource this class's CustomObjectsApi calls are for (catalog_api.py)
        plural = getattr(owner, "CUSTOM_PLURAL", PLURAL)
        tree = ast.parse(inspect.getsource(function).strip())
        needs: set[Permission] = set()
        called: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            holder = node.value
            if (
                isinstance(holder, ast.Attribute)
                and isinstance(holder.value, ast.Name)
                and holder.value.id == "self"
                and holder.attr in apis
            ):
                permission = permission_of(apis[holder.attr], node.attr, plural)
                if permission is not None:
                    needs.add(permission)
            elif isinstance(holder, ast.Name) and holder.id == "self":
                called.add(node.attr)
        direct[name], calls[name] = needs, called

    def closure(name: str, seen: frozenset[str] = frozenset()) -> set[Permission]:
        needs = set(direct.get(name, set()))
        for other in calls.get(name, set()) - seen - {name}:
            needs |= closure(other, seen | {name})
        return needs

    return {name: closure(name) for name in direct if not name.startswith("_")}


def _kube_helpers(public: set[str]) -> dict[str, set[str]]:
    """Classes of stageflow.kube that call KubeClient on their user's behalf (the template
    and schedule repositories of kube/catalog.py): class name -> the methods they call on
    the client they hold (`self._kube.…`)."""
    found: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for path in (ROOT / "kube").glob("*.py"):
        for cls in ast.parse(path.read_text()).body:
            if not isinstance(cls, ast.ClassDef):
                continue
            bases[cls.name] = [base.id for base in cls.bases if isinstance(base, ast.Name)]
            calls = {
                node.func.attr
                for node in ast.walk(cls)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in public
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "_kube"
            }
            if calls:
                found[cls.name] = calls
    for name in list(found):  # a helper also does what the helpers it extends do
        for base in bases.get(name, []):
            found[name] |= found.get(base, set())
    return found


def kube_methods_called(package: Path) -> set[str]:
    """The KubeClient methods that the modules under `package` call, themselves or through
    a kube helper class they use."""
    public = {name for name in kube_client_requests()}
    helpers = _kube_helpers(public)
    called: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in public
            ):
                called.add(node.func.attr)
            elif isinstance(node, ast.Name) and node.id in helpers:
                called |= helpers[node.id]
    return called


def needs_of(package: Path) -> set[Permission]:
    requests = kube_client_requests()
    return {p for method in kube_methods_called(package) for p in requests[method]}


# -- what kopf does for the operator -------------------------------------------------------------


def _kopf_handlers(registry: kopf.OperatorRegistry) -> Iterator[tuple[str, Any]]:
    for kind in ("_watching", "_spawning", "_changing", "_indexing"):
        for handler in getattr(registry, kind).get_all_handlers():
            yield kind, handler


# Resources whose objects may still carry kopf's finalizer from an earlier stageflow (0.1.0
# ran each WorkflowRun in a kopf daemon, which needs one). kopf removes a finalizer that no
# handler needs on the first event it sees, with a patch (kopf/_core/reactor/processing.py),
# so an upgraded operator frees those runs for deletion: it must be allowed to patch them.
FINALIZED_BEFORE = frozenset({(GROUP, PLURAL)})


def kopf_needs() -> set[Permission]:
    """What kopf itself asks of the apiserver for the operator's registry and settings."""
    needs: set[Permission] = set()
    for kind, handler in _kopf_handlers(build_registry(login=kopf.login_via_client)):
        selector = handler.selector
        group = selector.group or ""
        resource = selector.plural or selector.any_name
        assert resource, f"kopf handler {handler.id} names no resource"
        needs |= {Permission(group, resource, "list"), Permission(group, resource, "watch")}
        if kind in ("_spawning", "_changing"):  # finalizers and progress live on the object
            needs.add(Permission(group, resource, "patch"))
        if (group, resource) in FINALIZED_BEFORE:  # kopf removes a finalizer nothing needs
            needs.add(Permission(group, resource, "patch"))
    settings = kopf_settings()
    if settings.posting.enabled:
        needs.add(Permission("", "events", "create"))
    assert settings.scanning.disabled, "scanning lists CRDs and namespaces cluster-wide"
    return needs


# -- the two components ------------------------------------------------------------------------


CLUSTER_SCOPED = frozenset({"tokenreviews", "subjectaccessreviews"})  # granted by ClusterRole


def is_cluster_scoped(permission: Permission) -> bool:
    """Reviews exist in no namespace: a ClusterRole grants them (the API's auth mode)."""
    return permission.resource in CLUSTER_SCOPED


def operator_needs() -> set[Permission]:
    return needs_of(ROOT / "operator") | kopf_needs()


def api_needs() -> set[Permission]:
    return needs_of(ROOT / "api")
