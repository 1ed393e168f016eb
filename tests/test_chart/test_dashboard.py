"""The Grafana dashboard in charts/ queries only metrics that stageflow exports."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

import stageflow.api.metrics
import stageflow.operator.kube_events
import stageflow.operator.metrics
from tests.support.chart import CHART

DASHBOARD = CHART / "dashboards" / "stageflow.json"


def exported() -> set[str]:
    assert stageflow.api.metrics.API_REQUESTS is not None
    assert stageflow.operator.kube_events.EVENTS_POSTED is not None
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("stageflow_"):
            names |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
            names |= {f"{family.name}_count", f"{family.name}_sum"}
    return names


def test_every_queried_metric_is_exported_and_every_family_is_shown() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for query in queries for name in re.findall(r"stageflow_[a-z_]+", query)}
    assert used <= exported(), used - exported()
    families = {
        family.name for family in REGISTRY.collect() if family.name.startswith("stageflow_")
    }
    shown = {family for family in families if any(name.startswith(family) for name in used)}
    assert shown == families, families - shown
