"""Routes of the fleet's state: edge agents report heartbeats; a site's last state and its
recent history, where heartbeats queued during an outage arrive late and show it."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body
from millrace_common.http import errors

from millrace_registry.deps import FleetDep
from millrace_registry.schemas import Heartbeat, HeartbeatReceived, SiteStatus

router = APIRouter(prefix="/sites/{site}", tags=["fleet"])


@router.post(
    "/heartbeats", status_code=201, response_model=HeartbeatReceived, responses=errors(422)
)
async def report_heartbeat(
    site: str, heartbeat: Annotated[Heartbeat, Body()], fleet: FleetDep
) -> HeartbeatReceived:
    return await asyncio.to_thread(fleet.record, site=site, heartbeat=heartbeat)


@router.get("/status", response_model=SiteStatus, responses=errors(404, 422))
async def site_status(site: str, fleet: FleetDep) -> SiteStatus:
    return await asyncio.to_thread(fleet.status, site=site)
