"""What ingest runs on: its project and its broker, started and stopped with the app.

Ingest starts whether or not the broker answers: until it does, /readyz is red naming
it and posts are a 503 with Retry-After; it connects by itself when the broker comes."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from millrace_common.contracts import LABELS, PREDICTIONS, RAW
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.project import Project
from millrace_common.project_reload import ProjectReloader

from millrace_ingest.adapters.broker import Broker
from millrace_ingest.config import Settings

log = structlog.get_logger("millrace.ingest")


class Runtime:
    """What the routes need, built once at start-up."""

    def __init__(self, *, settings: Settings, project: Project, producer: Producer) -> None:
        self.settings = settings
        self.project = project
        self.producer = producer
        self.broker = Broker(
            producer, timeout=settings.send_timeout, retry_after=settings.retry_after
        )
        self._connecting: asyncio.Task[None] | None = None
        self.reloader = ProjectReloader(
            settings.project, current=lambda: self.project, apply=self._use
        )

    async def _use(self, project: Project) -> None:
        """A reloaded project (SIGHUP): the next record is validated against it."""
        self.project = project

    @property
    def started(self) -> bool:
        """Whether the producer is connected (posts are sent, not refused)."""
        return self.broker.connected

    @started.setter
    def started(self, value: bool) -> None:
        self.broker.connected = value

    async def start(self) -> None:
        self.reloader.install()
        self._connecting = asyncio.create_task(self._connect(), name="ingest-connect")

    async def _connect(self) -> None:
        """The broker waited for as long as it takes, then the topics and the producer."""
        while True:
            try:
                await wait_for_broker(self.settings.broker, timeout=30.0)
                await ensure_topics(self.settings.broker, [RAW, PREDICTIONS, LABELS])
                await self.producer.start()
            except (TimeoutError, OSError, KafkaError) as exc:
                log.warning(
                    "broker_unavailable_at_start", broker=self.settings.broker, error=repr(exc)
                )
                await asyncio.sleep(2.0)
                continue
            self.started = True
            log.info("broker_connected", broker=self.settings.broker)
            return

    async def stop(self) -> None:
        self.reloader.uninstall()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self.started:
            await self.producer.stop()

    async def ready(self) -> tuple[bool, str]:
        """Red, naming the broker, while it does not answer; green again once it does."""
        if not self.started:
            return False, f"connecting: the broker {self.settings.broker} has not answered yet"
        return await self.broker.ready()
