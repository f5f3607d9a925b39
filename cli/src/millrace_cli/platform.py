"""The whole platform as processes: what ``millrace dev`` and the end-to-end tests start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from millrace_common.errors import NotFound
from millrace_common.identity import mint_key

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
    auth: bool = field(default_factory=lambda: os.environ.get("MILLRACE_AUTH") != "off")
    """Whether the services require credentials (``MILLRACE_AUTH``, required unless off)."""
    tokens: dict[str, str] = field(default_factory=dict)
    """With auth: each identity's key (``provision_keys``): the services', the user's."""
    site_keys: list[str] = field(default_factory=list)
    """Lines of an edge agent's keys file: who may call it at the site (the user)."""

    def headers(self, identity: str = "user") -> dict[str, str]:
        token = self.tokens.get(identity)
        return {"Authorization": f"Bearer {token}"} if token else {}

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
            "MILLRACE_REGISTRY_FEATURES_URL": self.url("features"),
            "MILLRACE_FEATURES_DATA_DIR": str(self.workdir / "features-state"),
            "MILLRACE_SERVING_CACHE_DIR": str(self.workdir / "serving-cache"),
            "MILLRACE_AUTH": "required" if self.auth else "off",
            **self.env,
        }


IDENTITIES = {
    "trainer": "trainer",  # registers the versions its checks passed, reports runs
    "serving": "scientist",  # reads aliases and traffic policies from the registry
    "registry": "scientist",  # asks features for a model when live quality falls
    "simulator": "producer",  # the demo's records
    "user": "admin",  # the person at the keyboard: the key the console prints
}
"""Who ``millrace dev`` makes a key for, and the one role each gets."""


def provision_keys(config: PlatformConfig, *, site: str | None = None) -> None:
    """With authentication on, a fresh key per identity (and for ``site``) in the
    platform's database, the previous run's revoked: ``config.tokens``."""
    if not config.auth:
        return
    from millrace_common.db import make_engine
    from millrace_common.keys import KeyTable

    table = KeyTable(make_engine(config.database_url, pool_size=1))
    wanted = {f"dev-{name}": role for name, role in IDENTITIES.items()}
    if site is not None:
        wanted[f"dev-site-{site}"] = f"site:{site}"
    for name, role in wanted.items():
        try:
            table.revoke(name)
        except NotFound:
            pass
        token, record = mint_key(name, [role])
        table.add(record)
        config.tokens[name.removeprefix("dev-")] = token
        if role == "admin":
            config.site_keys.append(record.line())


def provision_signing(config: PlatformConfig) -> None:
    """The registry signs site manifests with a key of the work folder (made once), and
    edge agents verify with its public key: a site runs only signed models."""
    from millrace_common.signing import ensure_key_pair

    private = config.workdir / "signing" / "registry.pem"
    public = ensure_key_pair(private)
    config.env |= {
        "MILLRACE_REGISTRY_SIGNING_KEY_FILE": str(private),
        "MILLRACE_EDGE_AGENT_TRUSTED_KEY_FILE": str(public),
    }


def service_spec(config: PlatformConfig, service: str) -> ProcessSpec:
    prefix = f"MILLRACE_{service.upper().replace('-', '_')}_"
    return ProcessSpec(
        name=service,
        argv=[script(f"millrace-{service}")],
        env={
            **config.shared_env(),
            f"{prefix}PORT": str(config.ports[service]),
            # each service presents its own identity, never the user's
            "MILLRACE_TOKEN": config.tokens.get(service, ""),
        },
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
    cache = config.workdir / "edge" / site
    auth: dict[str, str] = {}
    if config.auth:
        # no database at a site: who may call the agent is its keys file
        cache.mkdir(parents=True, exist_ok=True)
        keys = cache.parent / f"{site}.keys"
        keys.write_text("".join(line + "\n" for line in config.site_keys))
        keys.chmod(0o600)
        auth = {
            "MILLRACE_AUTH_KEYS_FILE": str(keys),
            "MILLRACE_TOKEN": config.tokens.get(f"site-{site}", ""),
        }
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
            "MILLRACE_EDGE_AGENT_CACHE_DIR": str(cache),
            "MILLRACE_EDGE_AGENT_POLL_INTERVAL": "1",
            "MILLRACE_AUTH": "required" if config.auth else "off",
            **auth,
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
