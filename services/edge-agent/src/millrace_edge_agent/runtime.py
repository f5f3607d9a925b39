"""What the agent runs on, built once by ``app.bootstrap``: its models, its queues and
the loops that keep them moving. ``start`` serves the cached models first, then polls
the manifest (sooner when ``model-published`` says a listed model moved), forwards the
queue to the centre, writes and forwards prediction logs, takes MQTT records and
reports heartbeats, each in its own task. ``stop`` ends within its bound whatever the
broker, the MQTT broker, the registry or the centre is doing (``bounded``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from millrace_common.dataplane import DataPlane
from millrace_common.http import freeze_startup_heap
from millrace_common.project import Project
from millrace_common.project_reload import ProjectReloader
from millrace_common.scoring import ModelSlots

from millrace_edge_agent.adapters.kafka import ModelEvents
from millrace_edge_agent.adapters.mqtt import MqttRecords
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.config import Settings
from millrace_edge_agent.forwarder import Forwarder, PredictionLogForwarder
from millrace_edge_agent.heartbeat import Heartbeats
from millrace_edge_agent.intake import RecordIntake
from millrace_edge_agent.mqtt_intake import MessageIntake
from millrace_edge_agent.polling import ManifestPoller
from millrace_edge_agent.prediction_logs import PredictionLogBuffer
from millrace_edge_agent.shutdown import bounded, seconds_left
from millrace_edge_agent.site_features import SiteFeatures
from millrace_edge_agent.sync import Syncer

log = structlog.get_logger(__name__)


class Loop(Protocol):
    async def run(self) -> None: ...


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    slots: ModelSlots
    syncer: Syncer
    poller: ManifestPoller
    plane: DataPlane
    """What the predict routes score through (probation, prediction logs)."""
    queues: Queues
    intake: RecordIntake
    project: Project | None = None
    features: SiteFeatures | None = None
    """The feature engine over the queue file, with the project folder."""
    instance_id: str = ""
    """This agent among its site's agents (see ``adapters.cache.instance_id``)."""
    forwarder: Forwarder | None = None
    heartbeats: Heartbeats | None = None
    events: ModelEvents | None = None
    mqtt: MqttRecords | None = None
    mqtt_intake: MessageIntake | None = None
    prediction_logs: PredictionLogBuffer | None = None
    prediction_forwarder: PredictionLogForwarder | None = None
    closers: list[Any] = field(default_factory=list)
    """Async ``close()`` of the adapters, called at shutdown."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    reloader: ProjectReloader | None = None

    async def use_project(self, project: Project) -> None:
        """A reloaded project (SIGHUP): records are validated against it and go through
        its feature sets (windows started again from the file). The forwarder's
        aggregate mode keeps the datasets it started with until a restart."""
        assert self.features is not None
        await asyncio.to_thread(self.features.use_project, project)
        self.intake.project = project
        self.project = project

    async def start(self) -> None:
        if self.project is not None:  # a site without the folder has nothing to reload
            project = self.project
            self.reloader = ProjectReloader(
                self.settings.project,
                current=lambda: self.project or project,
                apply=self.use_project,
            )
            self.reloader.install()
        restored = await asyncio.to_thread(self.syncer.restore)
        log.info(
            "edge_agent_started",
            site=self.settings.site,
            instance=self.instance_id,
            restored_from_disk=restored,
            cache_dir=str(self.settings.cache_path),
            queued=self.queues.records.depth(),
        )
        loops: list[tuple[str, Loop | None]] = [
            ("manifest-poll", self.poller),
            ("forwarder", self.forwarder),
            ("prediction-logs", self.prediction_logs),
            ("prediction-log-forwarder", self.prediction_forwarder),
            ("heartbeats", self.heartbeats),
            ("model-events", self.events),
            ("mqtt-records", self.mqtt),
        ]
        for name, loop in loops:
            if loop is not None:
                self._spawn(loop.run(), name)
        freeze_startup_heap()  # the cached models are open: what start-up built stays

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        """Within half of ``stop_timeout`` (the server had the other half for requests
        under way): the loops cancelled, the prediction logs written, the clients
        closed, each step bounded by what is left; what has not finished by then is
        left behind, named in the log. The queue file is closed in every case."""
        if self.reloader is not None:
            self.reloader.uninstall()
        started = time.monotonic()
        deadline = started + self.settings.stop_timeout / 2
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, left = await asyncio.wait(self._tasks, timeout=seconds_left(deadline))
            if left:
                log.warning("stop_left_running", tasks=sorted(t.get_name() for t in left))
        if self.prediction_logs is not None:  # a clean stop loses no prediction log
            await bounded(self.prediction_logs.flush(), seconds=seconds_left(deadline), what="logs")
        for closer in self.closers:
            await bounded(
                closer.close(), seconds=seconds_left(deadline), what=type(closer).__name__
            )
        self.queues.close()
        log.info(
            "edge_agent_stopped",
            site=self.settings.site,
            seconds=round(time.monotonic() - started, 3),
        )

    async def ready(self) -> tuple[bool, str]:
        if len(self.slots) == 0:
            return False, "no model loaded yet"
        return True, f"{len(self.slots)} model(s) loaded"
