"""Reading a Prometheus /metrics page in tests: samples by name and labels, and their change."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> tuple[str, Samples]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample (0 when the series does not exist yet: counters start there)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def label_values(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    """Every label value on the page (to show that no run id is one)."""
    return {value for (_, labels) in samples for _, value in labels}
