"""The compose file, checked the way `docker compose config` would (no engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml
from millrace_edge_agent.adapters.mqtt import BrokerAddress
from millrace_edge_agent.config import Settings
from millrace_edge_agent.mqtt_intake import TopicPattern

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVICES = ("ingest", "features", "trainer", "registry", "serving", "edge-agent")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_every_millrace_service_builds_from_the_one_dockerfile() -> None:
    """One parametrised Dockerfile: the service and its port are build arguments, the
    image is the one the Kubernetes manifests name."""
    services = _compose()["services"]
    for name in SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["args"]["SERVICE"] == name
        assert (ROOT / "services" / name / "pyproject.toml").is_file()
        assert services[name]["ports"][0].endswith(f":{build['args']['PORT']}")
        assert services[name]["image"].startswith(f"millrace-{name}:")
    assert not list(ROOT.glob("services/*/Dockerfile"))


def test_the_dockerfile_runs_the_services_own_command() -> None:
    recipe = DOCKERFILE.read_text()
    assert "ARG SERVICE" in recipe and "ARG PORT" in recipe
    assert 'uv sync --frozen --no-dev --package "millrace-$SERVICE"' in recipe
    assert "EXPOSE $PORT" in recipe
    assert 'exec \\"millrace-$MILLRACE_SERVICE\\" \\"$@\\"' in recipe


ONE_SHOT = {"minio-init", "keys-init"}
"""Jobs that run once and exit (others wait for them to complete): no healthcheck."""


def test_infrastructure_and_healthchecks() -> None:
    services = _compose()["services"]
    assert "apache/kafka" in services["kafka"]["image"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres")
    assert services["minio"]["image"].startswith("minio/minio")
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert "test" in service["healthcheck"], f"{name} has no healthcheck"


def test_depends_on_names_existing_services_with_valid_conditions() -> None:
    services = _compose()["services"]
    allowed = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in allowed
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency]


def test_services_share_the_platform_variables() -> None:
    services = _compose()["services"]
    for name in ("ingest", "features", "trainer", "registry", "serving"):
        env = services[name]["environment"]
        assert env["MILLRACE_BROKER"] == "kafka:9092"
        assert env["MILLRACE_DATABASE_URL"].startswith("postgresql")
        assert env["MILLRACE_OBJECT_STORE"].startswith("s3://millrace")


def test_the_example_site_takes_records_from_its_mosquitto() -> None:
    """The edge agent reads the compose file's MQTT settings as it would at start-up,
    and they name the broker beside it, its credentials and a topic of its own site."""
    services = _compose()["services"]
    broker, agent = services["mosquitto"], services["edge-agent"]
    assert broker["image"].startswith("eclipse-mosquitto:2")
    assert agent["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    site = agent["command"][agent["command"].index("--site") + 1]
    env = agent["environment"]
    settings = Settings(
        site=site,
        mqtt_url=env["MILLRACE_EDGE_AGENT_MQTT_URL"],
        mqtt_topic=env["MILLRACE_EDGE_AGENT_MQTT_TOPIC"],
    )
    address = BrokerAddress.parse(settings.mqtt_url)
    assert (address.host, address.port) == ("mosquitto", 1883)
    assert "1883:1883" in broker["ports"]
    credentials = broker["environment"]
    assert (address.username, address.password) == (
        credentials["MQTT_USER"],
        credentials["MQTT_PASSWORD"],
    )
    pattern = TopicPattern.parse(settings.mqtt_topic, site=site)
    assert pattern.dataset_of(f"millrace/{site}/machines/records") == "machines"
    assert env["MILLRACE_EDGE_AGENT_FORWARD_URL"] == "http://ingest:8010"


def test_mosquitto_config_authenticates_and_persists_sessions() -> None:
    """The mounted config: no anonymous clients, the password file the service's command
    writes, persistence on a named volume, and a healthcheck that logs in."""
    compose = _compose()
    broker = compose["services"]["mosquitto"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in broker["volumes"]}
    config_file = "/mosquitto/config/mosquitto.conf"
    assert f"exec mosquitto -c {config_file}" in broker["command"][0]
    config = dict(
        line.split(None, 1)
        for line in (COMPOSE.parent / mounts[config_file]).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert config["listener"] == "1883" and config["allow_anonymous"] == "false"
    assert f"mosquitto_passwd -c -b {config['password_file']} " in broker["command"][0]
    assert config["persistence"] == "true"
    volume = mounts[config["persistence_location"].rstrip("/")]
    assert volume in compose["volumes"]
    assert int(config["max_queued_messages"]) > 1000
    health = broker["healthcheck"]["test"][1]
    assert health.startswith("mosquitto_sub") and '-u "$$MQTT_USER"' in health


def test_prometheus_and_grafana_run_beside_the_platform() -> None:
    """Prometheus on 9090 and Grafana on 3000 (DESIGN §12), their files mounted read-only,
    Grafana started once Prometheus is healthy, its admin password from the environment."""
    services = _compose()["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana:")
    assert "9090:9090" in prometheus["ports"] and "3000:3000" in grafana["ports"]
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert volume.endswith(":ro"), volume
                assert (COMPOSE.parent / source).exists(), volume
            else:
                assert source in _compose()["volumes"], volume
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
