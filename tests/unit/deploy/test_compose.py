"""The compose file, checked the way `docker compose config` would (no engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
SERVICES = ("ingest", "features", "trainer", "registry", "serving", "edge-agent")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_every_millrace_service_builds_from_its_own_dockerfile() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        build = services[name]["build"]
        dockerfile = (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile == ROOT / "services" / name / "Dockerfile"
        assert dockerfile.is_file()
        assert f"millrace-{name}" in dockerfile.read_text()


def test_infrastructure_and_healthchecks() -> None:
    services = _compose()["services"]
    assert "apache/kafka" in services["kafka"]["image"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres")
    assert services["minio"]["image"].startswith("minio/minio")
    for name, service in services.items():
        if name != "minio-init":
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
