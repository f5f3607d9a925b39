"""The registry's web UI: server-rendered, read-only pages under ``/ui`` built from the same
use cases as the REST API (changes stay audited REST or CLI calls; the pages show them).

    /ui                                   models, searched like GET /v1/models
    /ui/models/{name}                     aliases, traffic policy, versions
    /ui/models/{name}/runs                runs, with a form to compare selected ones
    /ui/models/{name}/compare?run=&run=   runs side by side, differences highlighted
    /ui/models/{name}/monitoring          live quality: charts per window and version
    /ui/models/{name}/audit               the audit log, newest first
    /ui/models/{name}/versions/{version}  the version's lineage
    /ui/sites, /ui/sites/{site}           should run vs reported, heartbeat history
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from millrace_registry.ui import model, models, sites, version
from millrace_registry.ui.render import error_page

ui_router = APIRouter(include_in_schema=False)
for pages in (models.router, model.router, version.router, sites.router):
    ui_router.include_router(pages, prefix="/ui")


@ui_router.get("/ui/{path:path}")
async def no_such_page(path: str) -> HTMLResponse:
    """Matched last: a browser that asks for a page that does not exist gets a page."""
    return error_page(404, f"no page /ui/{path}")


home_router = APIRouter(include_in_schema=False)


@home_router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui")
