"""Queries on the heartbeats sites report; each works inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from millrace_registry.adapters.repository import JsonObject
from millrace_registry.adapters.tables import site_heartbeats

HISTORY = 50
"""Heartbeats kept per site (older ones are deleted as new ones arrive)."""


def add(
    session: Session, *, site: str, sent_at: datetime, received_at: datetime, state: JsonObject
) -> None:
    """Keep the heartbeat, and only the ``HISTORY`` newest of the site's."""
    session.execute(
        site_heartbeats.insert().values(
            site=site, sent_at=sent_at, received_at=received_at, state=state
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


def history(session: Session, *, site: str, limit: int | None = None) -> list[RowMapping]:
    """The site's heartbeats, newest first."""
    query = (
        sa.select(site_heartbeats)
        .where(site_heartbeats.c.site == site)
        .order_by(site_heartbeats.c.sent_at.desc())
        .limit(limit)
    )
    return list(session.execute(query).mappings())


def last(session: Session, *, site: str) -> RowMapping | None:
    found = history(session, site=site, limit=1)
    return found[0] if found else None


def reporting_sites(session: Session) -> set[str]:
    """Every site that has reported at least once."""
    return set(session.execute(sa.select(site_heartbeats.c.site).distinct()).scalars())
