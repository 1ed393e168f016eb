"""A standby operator answers its liveness probe, and frees the port for kopf's when it leads."""

from __future__ import annotations

import httpx

from stageflow.operator.probes import StandbyProbe
from tests.redis_server import free_port


async def test_standby_probe_answers_then_frees_its_port() -> None:
    port = free_port()
    probe = await StandbyProbe.start(port, host="127.0.0.1")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 200
        assert response.json() == {"standby": True}
    await probe.stop()
    again = await StandbyProbe.start(port, host="127.0.0.1")  # the port is free again
    await again.stop()
