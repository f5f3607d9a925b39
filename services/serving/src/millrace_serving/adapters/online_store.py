"""Online feature lookup: the latest feature row per entity, from the feature store's
``online_rows`` table (written by the features service)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from millrace_common.contracts import ModelSchema
from millrace_common.errors import NotFound
from millrace_common.feature_store import online_rows
from sqlalchemy import Engine


class OnlineFeatures:
    """Rows whose features cover every feature the model needs; the newest one wins."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def lookup(self, schema: ModelSchema, entity_ids: Sequence[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.fetch, schema.features, entity_ids)

    def fetch(self, features: Sequence[str], entity_ids: Sequence[str]) -> list[dict[str, Any]]:
        query = sa.select(
            online_rows.c.entity_id, online_rows.c.event_time, online_rows.c.features
        ).where(online_rows.c.entity_id.in_(set(entity_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = newest_covering(rows, set(features))
        for i, entity_id in enumerate(entity_ids):
            if entity_id not in found:
                raise NotFound(
                    f"no online features for entity '{entity_id}'", field=f"entity_ids[{i}]"
                )
        return [found[entity_id] for entity_id in entity_ids]


def newest_covering(rows: Sequence[Any], needed: set[str]) -> dict[str, dict[str, Any]]:
    best: dict[str, tuple[Any, dict[str, Any]]] = {}
    for entity_id, event_time, features in rows:
        if not needed <= features.keys():
            continue
        if entity_id not in best or event_time > best[entity_id][0]:
            best[entity_id] = (event_time, features)
    return {entity_id: features for entity_id, (_, features) in best.items()}
