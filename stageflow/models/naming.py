"""The name of a task attempt's Job: derived from the run, the task and the attempt, so the
operator finds a Job again after a restart, and a big run's status need not store each
instance's (models/folding.py folds a name that is the derived one)."""

from __future__ import annotations

import hashlib
import re

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def job_name(run_name: str, task_id: str, attempt: int) -> str:
    """`<task>-<run>-<hash>-a<attempt>`: readable, unique per attempt, a valid DNS label."""
    digest = hashlib.sha256(f"{run_name}/{task_id}".encode()).hexdigest()[:6]
    suffix = f"-{run_name[:8]}-{digest}-a{attempt}"
    slug = _NOT_DNS.sub("-", task_id.lower()).strip("-")[: 63 - len(suffix)].rstrip("-")
    return (slug or "task") + suffix
