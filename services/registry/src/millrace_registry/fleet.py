"""Fleet state: edge agents report heartbeats; the registry keeps each site's last state
and its recent history, where heartbeats queued during an outage arrive late and show it."""

from __future__ import annotations

from datetime import UTC, datetime

from millrace_common.errors import InvalidInput, NotFound
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import heartbeats, rows
from millrace_registry.schemas import Heartbeat, HeartbeatReceived, SiteStatus


class Fleet:
    """Synchronous use cases (the HTTP layer runs them in worker threads)."""

    def __init__(self, *, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def record(self, *, site: str, heartbeat: Heartbeat) -> HeartbeatReceived:
        if heartbeat.site != site:
            raise InvalidInput(
                f"the heartbeat is for site '{heartbeat.site}', not '{site}'", field="site"
            )
        now = datetime.now(UTC)
        with self._factory.begin() as session:
            heartbeats.add(
                session,
                site=site,
                sent_at=heartbeat.sent_at,
                received_at=now,
                state=heartbeat.model_dump(mode="json"),
            )
        return HeartbeatReceived(site=site, received_at=now)

    def status(self, *, site: str) -> SiteStatus:
        """The last state the site reported, when it was seen, and its recent heartbeats."""
        with self._factory() as session:
            found = heartbeats.history(session, site=site)
        if not found:
            raise NotFound(f"site '{site}' has never reported")
        return rows.site_status(found)
