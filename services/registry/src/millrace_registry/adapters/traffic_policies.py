"""Queries on traffic policies; each works inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from millrace_registry.adapters.tables import traffic_policies as table


def get(session: Session, *, name: str) -> RowMapping | None:
    return session.execute(sa.select(table).where(table.c.model == name)).mappings().one_or_none()


def put(
    session: Session,
    *,
    name: str,
    mode: str,
    challenger_alias: str,
    percent: float | None,
    key_field: str | None,
    reason: str,
    actor: str,
    updated_at: datetime,
) -> None:
    """Insert or replace the model's policy; the caller holds the model's row lock, so no
    one inserts meanwhile."""
    values = {
        "mode": mode,
        "challenger_alias": challenger_alias,
        "percent": percent,
        "key_field": key_field,
        "reason": reason,
        "actor": actor,
        "updated_at": updated_at,
    }
    if get(session, name=name) is None:
        session.execute(table.insert().values(model=name, **values))
    else:
        session.execute(table.update().where(table.c.model == name).values(**values))
