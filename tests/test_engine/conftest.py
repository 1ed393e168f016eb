"""Running a workflow body through the engine, with a sink that records every publish."""

from __future__ import annotations

from typing import Any

import pytest

from stageflow.engine import RunStatus, TaskRegistry
from tests.support.engine import RecordingSink, RunBody, make_runner


@pytest.fixture
def run_body(tasks: TaskRegistry) -> RunBody:
    async def run(body: dict[str, Any], sink: RecordingSink | None = None) -> RunStatus:
        return await make_runner(body, tasks, sink).run()

    return run
