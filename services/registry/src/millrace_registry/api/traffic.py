"""Routes of traffic policies: how serving splits a model's production traffic between
production and a challenger alias (``traffic`` explains the modes)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Request
from millrace_common.http import errors

from millrace_registry.api.params import signed
from millrace_registry.deps import TrafficDep
from millrace_registry.schemas import ModelTraffic, TrafficPolicy

router = APIRouter(prefix="/models/{name}/traffic", tags=["traffic"])


@router.put("", response_model=ModelTraffic, responses=errors(404, 422))
async def set_traffic(
    name: str, policy: Annotated[TrafficPolicy, Body()], traffic: TrafficDep, request: Request
) -> ModelTraffic:
    """Replace the model's policy (audited); mode ``none`` ends a canary or shadow."""
    return await asyncio.to_thread(traffic.set, name=name, policy=signed(request, policy))


@router.get("", response_model=ModelTraffic, responses=errors(404, 422))
async def get_traffic(name: str, traffic: TrafficDep) -> ModelTraffic:
    """The policy in force (mode ``none`` when never set)."""
    return await asyncio.to_thread(traffic.get, name=name)
