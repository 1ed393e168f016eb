"""The data-quality pipeline's tasks: profile a table, find anomalies, derive and apply rules.

Load them with STAGEFLOW_TASK_MODULES=examples.data_quality.tasks (in the API for
validation and the local backend, in the operator to run them). Each task is a
plain function of its params returning JSON outputs; the workflow in
pipeline.json wires them together with references, forEach, when and until.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from stageflow.engine import task

Row = dict[str, str]
COUNTRIES = {"PT", "US", "DE", "FR", "IN", "GB", "ES", "JP", "BR", "NL", "IT", "SE", "NO", "DK"}
COUNTRY_ALIASES = {"usa": "US", "uk": "GB"}
MAX_QUANTITY = 100
TODAY = date(2026, 11, 1)  # fixed, so the example's output is the same on every run


def load(table: str) -> list[Row]:
    """A CSV table; a relative path that does not exist is taken beside this module."""
    path = Path(table)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).parent / table
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def anomalies(rows: list[Row], column: str) -> Counter[str]:
    """The kinds of anomaly in one column, counted (one definition, used to find and to check)."""
    found: Counter[str] = Counter()
    seen: set[str] = set()
    for row in rows:
        value = row[column].strip()
        if column == "order_id":
            if value in seen:
                found["duplicate"] += 1
            seen.add(value)
        elif column == "customer_email" and not value:
            found["missing"] += 1
        elif column == "amount" and float(value) < 0:
            found["negative"] += 1
        elif column == "quantity" and int(value) > MAX_QUANTITY:
            found["outlier"] += 1
        elif column == "country" and value not in COUNTRIES:
            found["unknown_code"] += 1
        elif column == "order_date" and date.fromisoformat(value) > TODAY:
            found["in_the_future"] += 1
    return found


RULES = {
    ("order_id", "duplicate"): "drop_duplicate_orders",
    ("customer_email", "missing"): "drop_rows_without_email",
    ("amount", "negative"): "refunds_as_positive_amounts",
    ("quantity", "outlier"): "drop_quantity_outliers",
    ("country", "unknown_code"): "map_country_aliases_drop_unknown",
    ("order_date", "in_the_future"): "drop_future_orders",
}


def apply(rule: str, rows: list[Row]) -> list[Row]:
    if rule == "drop_duplicate_orders":
        seen: set[str] = set()
        kept = []
        for row in rows:
            if row["order_id"] not in seen:
                kept.append(row)
                seen.add(row["order_id"])
        return kept
    if rule == "drop_rows_without_email":
        return [row for row in rows if row["customer_email"].strip()]
    if rule == "refunds_as_positive_amounts":
        return [{**row, "amount": str(abs(float(row["amount"])))} for row in rows]
    if rule == "drop_quantity_outliers":
        return [row for row in rows if int(row["quantity"]) <= MAX_QUANTITY]
    if rule == "map_country_aliases_drop_unknown":
        mapped = [
            {**row, "country": COUNTRY_ALIASES.get(row["country"], row["country"])} for row in rows
        ]
        return [row for row in mapped if row["country"] in COUNTRIES]
    if rule == "drop_future_orders":
        return [row for row in rows if date.fromisoformat(row["order_date"]) <= TODAY]
    raise ValueError(f"unknown rule {rule!r}")


def total_anomalies(rows: list[Row]) -> int:
    return sum(sum(anomalies(rows, column).values()) for column in rows[0]) if rows else 0


@task("dq_profile")
def profile(table: str) -> dict[str, Any]:
    """Profile a CSV table: rows, columns, empty cells per column."""
    rows = load(table)
    columns = list(rows[0]) if rows else []
    empty = {column: sum(1 for row in rows if not row[column].strip()) for column in columns}
    print(f"profiled {table}: {len(rows)} rows, {len(columns)} columns")
    return {"rows": len(rows), "columns": columns, "empty": empty}


@task("dq_check_column")
def check_column(table: str, column: str) -> dict[str, Any]:
    """Find the anomalies of one column."""
    found = anomalies(load(table), column)
    print(f"{column}: {dict(found) or 'clean'}")
    return {"column": column, "anomalies": sum(found.values()), "kinds": dict(found)}


@task("dq_derive_rules")
def derive_rules(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """A fix per kind of anomaly found, the most effective first."""
    candidates = [
        {"rule": RULES[(finding["column"], kind)], "column": finding["column"], "fixes": count}
        for finding in findings
        for kind, count in finding["kinds"].items()
    ]
    candidates.sort(key=lambda rule: (-rule["fixes"], rule["rule"]))
    total = sum(finding["anomalies"] for finding in findings)
    print(f"{total} anomalies; rules: {[rule['rule'] for rule in candidates]}")
    return {"total": total, "rules": candidates}


@task("dq_apply_rules")
def apply_rules(
    table: str, rules: list[dict[str, Any]], iteration: int, pause_seconds: float = 0.0
) -> dict[str, Any]:
    """Iteration i applies the first i+1 rules to the table and counts what is left."""
    time.sleep(pause_seconds)  # lets a demo (or a test) stop the operator mid-loop
    chosen = [rule["rule"] for rule in rules[: iteration + 1]]
    rows = load(table)
    for rule in chosen:
        rows = apply(rule, rows)
    remaining = total_anomalies(rows)
    print(f"iteration {iteration}: applied {chosen[-1] if chosen else 'nothing'}; {remaining} left")
    return {"applied": chosen, "remaining": remaining, "rows": len(rows)}


@task("dq_report")
def report(before: int, after: dict[str, Any], threshold: int) -> dict[str, Any]:
    """What the pipeline achieved."""
    summary = {
        "anomalies_before": before,
        "anomalies_after": after["remaining"],
        "threshold": threshold,
        "rules_applied": after["applied"],
        "rows_kept": after["rows"],
    }
    print(summary)
    return summary
