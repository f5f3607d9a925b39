"""Transactional outbox: a row written in the same transaction as the change it
announces, relayed to Kafka by the owning service. No ghost events, no lost ones;
a crash between publish and ``sent_at`` means one more delivery, which consumers
deduplicate by event id."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from prometheus_client import Counter, Gauge
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from millrace_common.messaging import Envelope, Producer, dumps

log = structlog.get_logger(__name__)


def outbox_table(metadata: sa.MetaData, schema: str) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("key", sa.String(300)),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("ce_type", sa.String(120), nullable=False),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        schema=schema,
    )


def add_event(
    session: Session,
    table: sa.Table,
    *,
    topic: str,
    key: str | None,
    event_id: str,
    value: BaseModel | dict[str, Any],
    ce_type: str,
    traceparent: str | None = None,
) -> None:
    """Stage an event in the caller's transaction."""
    session.execute(
        table.insert().values(
            event_id=event_id,
            topic=topic,
            key=key,
            payload=dumps(value),
            ce_type=ce_type,
            traceparent=traceparent,
            created_at=datetime.now(UTC),
        )
    )


PUBLISHED = Counter(
    "millrace_outbox_published_total", "Outbox events published", ["source", "topic"]
)
RELAY_FAILURES = Counter(
    "millrace_outbox_relay_failures_total", "Relay passes that failed (and will retry)", ["source"]
)
OLDEST_UNSENT = Gauge(
    "millrace_outbox_oldest_unsent_seconds",
    "Age of the oldest committed event not yet published (0: none waiting)",
    ["source"],
)


@dataclass(frozen=True)
class PendingEvent:
    id: int
    event_id: str
    topic: str
    key: str | None
    payload: bytes
    ce_type: str
    traceparent: str | None
    created_at: datetime

    def json(self) -> dict[str, Any]:
        return orjson.loads(self.payload)


BeforeSend = Callable[[PendingEvent], Awaitable[None]]


class OutboxRelay:
    """Publish unsent outbox rows in order, then mark them sent; rows sent more than
    ``keep_sent`` seconds ago are deleted every ``purge_every`` seconds, so the table
    (and the relay's scan for unsent rows) stays small. Consumers deduplicate by event
    id, so a sent row has no use once the publish is done; days are kept for reading."""

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        table: sa.Table,
        producer: Producer,
        source: str,
        before_send: BeforeSend | None = None,
        interval: float = 0.2,
        keep_sent: float = 7 * 86_400,
        purge_every: float = 3_600,
    ) -> None:
        self._factory = factory
        self._table = table
        self._producer = producer
        self._source = source
        self._before_send = before_send
        self._interval = interval
        self._keep_sent = keep_sent
        self._purge_every = purge_every
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Relay now instead of at the next tick (after a commit that added events)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; the database or the broker being away is waited out
        with backoff and jitter (the events stay in the outbox), logged when it starts
        and when it ends, not on every attempt."""
        next_purge = time.monotonic()
        failures = 0
        while True:
            try:
                sent = await self.relay_once()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self._purge_every
                    await self._purge()
            except Exception as exc:  # noqa: BLE001 - keep relaying after any outage
                RELAY_FAILURES.labels(self._source).inc()
                failures += 1
                if failures == 1:
                    log.warning("outbox_relay_failed", error=repr(exc))
                await asyncio.sleep(min(10.0, 0.2 * 2**failures) * random.uniform(0.8, 1.2))
                continue
            if failures:
                log.info("outbox_relay_recovered", failed_attempts=failures)
                failures = 0
            if not sent:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def relay_once(self, limit: int = 100) -> int:
        pending = await asyncio.to_thread(self._pending, limit)
        oldest = _aware(pending[0].created_at) if pending else None
        OLDEST_UNSENT.labels(self._source).set(
            (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        )
        for event in pending:
            if self._before_send is not None:
                await self._before_send(event)
            envelope = Envelope(
                id=event.event_id,
                type=event.ce_type,
                source=self._source,
                time=datetime.now(UTC).isoformat(),
                traceparent=event.traceparent or Envelope.new(type="", source="").traceparent,
            )
            await self._producer.send(event.topic, event.payload, key=event.key, envelope=envelope)
            await asyncio.to_thread(self._mark_sent, event.id)
            PUBLISHED.labels(self._source, event.topic).inc()
            log.info("outbox_relayed", topic=event.topic, event_id=event.event_id)
        return len(pending)

    async def _purge(self) -> None:
        try:
            purged = await asyncio.to_thread(self.purge_sent)
        except Exception as exc:  # noqa: BLE001 - a failed purge is retried next time
            log.warning("outbox_purge_failed", error=repr(exc))
            return
        if purged:
            log.info("outbox_purged", rows=purged, keep_sent_seconds=self._keep_sent)

    def purge_sent(self, *, now: datetime | None = None) -> int:
        """Delete the rows published more than ``keep_sent`` seconds before ``now``;
        unsent rows are never touched, however old."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self._keep_sent)
        t = self._table
        with self._factory() as session, session.begin():
            purged = session.execute(
                t.delete().where(t.c.sent_at.is_not(None), t.c.sent_at < cutoff).returning(t.c.id)
            )
            return len(purged.all())

    def _pending(self, limit: int) -> list[PendingEvent]:
        t = self._table
        with self._factory() as session:
            rows = session.execute(
                sa.select(
                    t.c.id,
                    t.c.event_id,
                    t.c.topic,
                    t.c.key,
                    t.c.payload,
                    t.c.ce_type,
                    t.c.traceparent,
                    t.c.created_at,
                )
                .where(t.c.sent_at.is_(None))
                .order_by(t.c.id)
                .limit(limit)
            ).all()
        return [PendingEvent(*row) for row in rows]

    def _mark_sent(self, row_id: int) -> None:
        with self._factory() as session, session.begin():
            session.execute(
                self._table.update()
                .where(self._table.c.id == row_id)
                .values(sent_at=datetime.now(UTC))
            )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
