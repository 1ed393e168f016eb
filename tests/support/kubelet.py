"""What a kubelet writes when a task's container ends: tests stand in for it (no kubelet here)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def finished_pod_status(termination_message: str, *, exit_code: int = 0) -> dict[str, Any]:
    """A pod whose `task` container exited (0 by default) after writing its termination
    message."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "message": termination_message,
        "startedAt": now,
        "finishedAt": now,
    }
    return {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": "task",
                "image": "stageflow:0.1.0",
                "imageID": "docker-pullable://stageflow@sha256:0",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
