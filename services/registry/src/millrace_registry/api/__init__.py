"""The registry's REST routes under /v1, routes only: each parses the request, calls a use
case and answers its pydantic document (``schemas``)."""

from __future__ import annotations

from fastapi import APIRouter

from millrace_registry.api import fleet, models, monitoring, runs, sites, traffic, uploads

router = APIRouter(prefix="/v1")
for part in (models, monitoring, uploads, runs, sites, fleet, traffic):
    router.include_router(part.router)
