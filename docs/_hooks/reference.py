"""MkDocs hooks: the pages that are generated from the code, so they cannot drift from it.

- `<!-- stageflow:settings -->` becomes the table of every `STAGEFLOW_*` setting, read from
  the pydantic-settings classes of the API, the operator and the built-in tasks: the
  variable, which process reads it with which default, and the field's own description.
  A setting without a description fails the build.
- `<!-- stageflow:openapi -->` becomes the list of operations of the API's own OpenAPI
  document: method, path, operationId, summary and the status codes it may answer.

Loaded by mkdocs.yml (`hooks:`); `make docs` builds with `--strict`, in `make test`.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

SETTINGS_MARK = "<!-- stageflow:settings -->"
OPENAPI_MARK = "<!-- stageflow:openapi -->"


def _components() -> dict[str, type[BaseSettings]]:
    from stageflow.api.config import ApiSettings
    from stageflow.logs import LogSettings
    from stageflow.operator.config import OperatorSettings
    from stageflow.tasks.egress import EgressSettings
    from stageflow.tasks.http import HttpGetSettings

    return {
        "API": ApiSettings,
        "operator": OperatorSettings,
        "`http_get` task": HttpGetSettings,
        "`http_get` egress": EgressSettings,
        "logs (both)": LogSettings,
    }


def _default(field: FieldInfo) -> str:
    value = field.default
    if field.default_factory is not None:
        made = field.default_factory()  # type: ignore[call-arg]
        if not isinstance(made, (list, tuple, set, frozenset, dict)):
            return "computed"  # e.g. the host name: differs per process
        value = made
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(f"`{item}`" for item in value) or "none"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table() -> str:
    rows: dict[str, dict[str, Any]] = {}
    for component, cls in _components().items():
        prefix = str(cls.model_config.get("env_prefix") or "")
        for name, field in cls.model_fields.items():
            if not field.description:
                raise ValueError(f"{cls.__name__}.{name} has no description for the docs")
            variable = (prefix + name).upper()
            row = rows.setdefault(variable, {"description": field.description, "defaults": {}})
            row["defaults"][component] = _default(field)
    lines = [
        "| variable | meaning | read by, default |",
        "|---|---|---|",
    ]
    for variable in sorted(rows):
        row = rows[variable]
        defaults = row["defaults"]
        if len(set(defaults.values())) == 1:
            read_by = f"{', '.join(defaults)}: {next(iter(defaults.values()))}"
        else:
            read_by = "; ".join(f"{who}: {value}" for who, value in defaults.items())
        lines.append(f"| `{variable}` | {_cell(row['description'])} | {_cell(read_by)} |")
    return "\n".join(lines)


def openapi_reference() -> str:
    from stageflow.api import create_app
    from stageflow.api.config import ApiSettings

    document = create_app(ApiSettings()).openapi()
    lines = ["| operation | operationId | answers | summary |", "|---|---|---|---|"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = ", ".join(sorted(operation.get("responses", {})))
            summary = (operation.get("description") or operation.get("summary", "")).split("\n")[0]
            lines.append(
                f"| `{method.upper()} {path}` | `{operation.get('operationId', '')}` | {codes} "
                f"| {_cell(summary)} |"
            )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' hook: fill the generated parts of a page."""
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, settings_table())
    if OPENAPI_MARK in markdown:
        markdown = markdown.replace(OPENAPI_MARK, openapi_reference())
    return markdown
