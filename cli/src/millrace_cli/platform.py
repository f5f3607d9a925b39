"""The whole platform as processes: what ``millrace dev`` and the end-to-end tests start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from millrace_cli.processes import ProcessSpec, Supervisor, script, tansu_spec

SERVICES = ("registry", "ingest", "features", "trainer", "serving")
DEFAULT_PORTS = {
    "broker": 9092,
    "ingest": 8010,
    "registry": 8020,
    "serving": 8030,
    "features": 8040,
    "trainer": 8050,
    "edge-agent": 8060,
}


@dataclass
class PlatformConfig:
    database_url: str
    object_store: str
    project: Path
    workdir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    env: dict[str, str] = field(default_factory=dict)

    @property
    def broker(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def shared_env(self) -> dict[str, str]:
        return {
            "MILLRACE_BROKER": self.broker,
            "MILLRACE_DATABASE_URL": self.database_url,
            "MILLRACE_OBJECT_STORE": self.object_store,
            "MILLRACE_PROJECT": str(self.project),
            "MILLRACE_TRAINER_REGISTRY_URL": self.url("registry"),
            "MILLRACE_SERVING_REGISTRY_URL": self.url("registry"),
            "MILLRACE_FEATURES_DATA_DIR": str(self.workdir / "features-state"),
            "MILLRACE_SERVING_CACHE_DIR": str(self.workdir / "serving-cache"),
            **self.env,
        }


def service_spec(config: PlatformConfig, service: str) -> ProcessSpec:
    prefix = f"MILLRACE_{service.upper().replace('-', '_')}_"
    return ProcessSpec(
        name=service,
        argv=[script(f"millrace-{service}")],
        env={**config.shared_env(), f"{prefix}PORT": str(config.ports[service])},
        ready_url=f"{config.url(service)}/readyz",
    )


def edge_agent_spec(
    config: PlatformConfig,
    *,
    site: str,
    name: str = "edge-agent",
    object_store: str | None = None,
    port: int | None = None,
) -> ProcessSpec:
    port = port or config.ports["edge-agent"]
    return ProcessSpec(
        name=name,
        argv=[script("millrace-edge-agent"), "run", "--site", site],
        # the centre as a connected site sees it: Kafka for model-published, ingest for
        # forwarded records, the registry for heartbeats; each unreachable only queues
        env={
            "MILLRACE_OBJECT_STORE": object_store or config.object_store,
            "MILLRACE_BROKER": config.broker,
            "MILLRACE_PROJECT": str(config.project),
            "MILLRACE_EDGE_AGENT_FORWARD_URL": config.url("ingest"),
            "MILLRACE_EDGE_AGENT_REGISTRY_URL": config.url("registry"),
            "MILLRACE_EDGE_AGENT_HEARTBEAT_INTERVAL": "5",
            "MILLRACE_EDGE_AGENT_PORT": str(port),
            "MILLRACE_EDGE_AGENT_CACHE_DIR": str(config.workdir / "edge" / site),
            "MILLRACE_EDGE_AGENT_POLL_INTERVAL": "1",
            **config.env,
        },
        ready_url=f"http://127.0.0.1:{port}/healthz",
    )


def start_platform(
    supervisor: Supervisor, config: PlatformConfig, *, with_broker: bool = True
) -> None:
    """Start the broker and the five central services, each waited for by its /readyz."""
    if with_broker:
        supervisor.start(tansu_spec(config.ports["broker"]))
    for service in SERVICES:
        supervisor.start(service_spec(config, service), timeout=180)
