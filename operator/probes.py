"""The liveness endpoint of a standby operator (one that waits for the leader Lease).

Why: kopf serves its liveness probe only once it runs, which a standby does not
yet; without an answer, the kubelet would restart every standby forever. While
standing by, this answers `/healthz` on the same port (the process lives and keeps
trying for the Lease); it stops before kopf starts its own probe there.
"""

from __future__ import annotations

from aiohttp import web


class StandbyProbe:
    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @classmethod
    async def start(cls, port: int, *, host: str = "0.0.0.0") -> StandbyProbe:
        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"standby": True})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return cls(runner)

    async def stop(self) -> None:
        await self._runner.cleanup()
