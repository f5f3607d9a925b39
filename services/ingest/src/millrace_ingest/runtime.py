"""What ingest runs on: its project and its broker, started and stopped with the app."""

from __future__ import annotations

from millrace_common.contracts import PREDICTIONS, RAW
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.project import Project

from millrace_ingest.adapters.broker import Broker
from millrace_ingest.config import Settings


class Runtime:
    """What the routes need, built once at start-up."""

    def __init__(self, *, settings: Settings, project: Project, producer: Producer) -> None:
        self.settings = settings
        self.project = project
        self.producer = producer
        self.broker = Broker(
            producer, timeout=settings.send_timeout, retry_after=settings.retry_after
        )
        self.started = False

    async def start(self) -> None:
        await wait_for_broker(self.settings.broker)
        await ensure_topics(self.settings.broker, [RAW, PREDICTIONS])
        await self.producer.start()
        self.started = True

    async def stop(self) -> None:
        await self.producer.stop()

    async def ready(self) -> tuple[bool, str]:
        """Red, naming the broker, while it does not answer; green again once it does."""
        if not self.started:
            return False, "starting"
        return await self.broker.ready()
