"""Fleet state: edge agents report heartbeats; the registry keeps each site's last state
and its recent history, where heartbeats queued during an outage arrive late and show it.

    POST /v1/sites/{site}/heartbeats   {site, models, last_sync, queue_depth, drops,
                                        last_error, sent_at}
    GET  /v1/sites/{site}/status       the last state, when it was seen, recent heartbeats
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Request
from millrace_common.errors import InvalidInput, NotFound
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters.tables import site_heartbeats

HISTORY = 50
"""Heartbeats kept per site (older ones are deleted as new ones arrive)."""


class ReportedModel(BaseModel):
    name: str
    alias: str = "production"
    version: int


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="allow")
    site: str
    models: list[ReportedModel] = Field(default_factory=list)
    last_sync: datetime | None = None
    queue_depth: int = Field(0, ge=0)
    drops: int = Field(0, ge=0)
    """Records the site dropped (the centre is missing exactly these)."""
    prediction_log_drops: int = Field(0, ge=0)
    """Prediction logs the site dropped (its monitoring data, not its records)."""
    last_error: str | None = None
    sent_at: datetime


class Fleet:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def record(self, *, site: str, heartbeat: Heartbeat) -> dict[str, Any]:
        if heartbeat.site != site:
            raise InvalidInput(
                f"the heartbeat is for site '{heartbeat.site}', not '{site}'", field="site"
            )
        now = datetime.now(UTC)
        with self.factory.begin() as session:
            session.execute(
                site_heartbeats.insert().values(
                    site=site,
                    sent_at=heartbeat.sent_at,
                    received_at=now,
                    state=heartbeat.model_dump(mode="json"),
                )
            )
            keep = (
                sa.select(site_heartbeats.c.id)
                .where(site_heartbeats.c.site == site)
                .order_by(site_heartbeats.c.sent_at.desc())
                .limit(HISTORY)
            )
            session.execute(
                site_heartbeats.delete().where(
                    site_heartbeats.c.site == site,
                    site_heartbeats.c.id.not_in(keep.scalar_subquery()),
                )
            )
        return {"site": site, "received_at": now.isoformat()}

    def status(self, *, site: str) -> dict[str, Any]:
        with self.factory() as session:
            rows = (
                session.execute(
                    sa.select(site_heartbeats)
                    .where(site_heartbeats.c.site == site)
                    .order_by(site_heartbeats.c.sent_at.desc())
                )
                .mappings()
                .all()
            )
        if not rows:
            raise NotFound(f"site '{site}' has never reported")
        last = rows[0]
        return {
            "site": site,
            **last["state"],
            "last_seen": _aware(last["received_at"]).isoformat(),
            "history": [_entry(row) for row in rows],
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _entry(row: Any) -> dict[str, Any]:
    sent, received = _aware(row["sent_at"]), _aware(row["received_at"])
    return {
        "sent_at": sent.isoformat(),
        "received_at": received.isoformat(),
        "delay_seconds": round((received - sent).total_seconds(), 3),
        "queue_depth": row["state"].get("queue_depth"),
        "drops": row["state"].get("drops"),
        "last_error": row["state"].get("last_error"),
    }


def get_fleet(request: Request) -> Fleet:
    runtime = request.app.state.runtime
    fleet = getattr(runtime, "fleet", None)
    if fleet is None:
        fleet = runtime.fleet = Fleet(runtime.factory)
    return fleet  # type: ignore[no-any-return]


FleetDep = Annotated[Fleet, Depends(get_fleet)]
fleet_router = APIRouter(prefix="/v1")


@fleet_router.post("/sites/{site}/heartbeats", status_code=201)
async def report_heartbeat(
    site: str, heartbeat: Annotated[Heartbeat, Body()], fleet: FleetDep
) -> dict[str, Any]:
    return await asyncio.to_thread(fleet.record, site=site, heartbeat=heartbeat)


@fleet_router.get("/sites/{site}/status")
async def site_status(site: str, fleet: FleetDep) -> dict[str, Any]:
    return await asyncio.to_thread(fleet.status, site=site)
