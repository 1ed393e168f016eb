"""The web page under /ui: a list of runs and a page per run, the templates and the
schedules, served from the package.

The pages are static (HTML, CSS and a script in api/ui/static, shipped in the wheel:
no CDN); the script calls the same HTTP API as the CLI with the token the user
entered once (kept in the browser's localStorage), so the auth modes apply as they
do everywhere. The pages themselves hold no data and are open; the one view the API
lacks, the run's graph as SVG (api/ui/graph.py), is behind the same `get` check.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from stageflow.api.auth import MayGet
from stageflow.api.deps import BackendDep, RunId
from stageflow.api.ui.graph import run_graph_svg

STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"

router = APIRouter(prefix="/ui", include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


# GET and HEAD: a HEAD (a link checker's, a monitor's) gets the page's headers, not a 405.
PAGE = ["GET", "HEAD"]


@router.api_route("", methods=PAGE)
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.api_route("/", methods=PAGE)
async def run_list_page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.api_route("/runs/{run_id}", methods=PAGE)
async def run_page(run_id: str) -> FileResponse:
    return FileResponse(STATIC / "run.html")


@router.api_route("/templates", methods=PAGE)
@router.api_route("/templates/{name}", methods=PAGE)
@router.api_route("/templates/{name}/revisions/{revision}", methods=PAGE)
async def templates_page() -> FileResponse:
    """The templates; the one in the path (a revision, or the current one) opened below."""
    return FileResponse(STATIC / "templates.html")


@router.api_route("/schedules", methods=PAGE)
@router.api_route("/schedules/{name}", methods=PAGE)
async def schedules_page() -> FileResponse:
    """The schedules; the one in the path shown in full below."""
    return FileResponse(STATIC / "schedules.html")


@router.get("/runs/{run_id}/graph.svg")
async def run_graph(_: MayGet, run_id: RunId, backend: BackendDep) -> Response:
    record = await backend.get(run_id)
    return Response(run_graph_svg(record), media_type="image/svg+xml")
