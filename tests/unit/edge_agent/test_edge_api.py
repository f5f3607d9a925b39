"""The agent's HTTP surface: the serving predict route, status, health, and settings."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from millrace_cli.processes import script, wait_until
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.adapters.kafka import group_id_of
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings, load_settings

from tests.support.models import deploy_to_site, instance

SITE = "plant-1"
MODEL = "machine-failure"


def test_serves_the_site_model_over_the_serving_api(tmp_path: Path) -> None:
    store = MemoryStore()
    deploy_to_site(store, site=SITE, name=MODEL)
    # no project folder: features only come with the request (see test_edge_features)
    settings = Settings(site=SITE, cache_dir=str(tmp_path), poll_interval=0.05, project="")
    with TestClient(create_app(bootstrap(settings, store=store))) as client:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=10,
            what="the agent to load its model",
            interval=0.05,
        )
        response = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
        assert response.status_code == 200 and response.json()["version"] == 1
        by_entity = client.post(f"/v1/models/{MODEL}/predict", json={"entity_ids": ["m-17"]})
        assert by_entity.status_code == 422
        assert by_entity.json()["field"] == "entity_ids"
        assert "no online feature store" in by_entity.json()["message"]
        status = client.get("/v1/status").json()
        assert status["site"] == SITE and status["last_sync"] is not None
        assert [(m["name"], m["version"]) for m in status["models"]] == [(MODEL, 1)]


def test_scoring_route_matched_first_and_start_up_heap_frozen(tmp_path: Path) -> None:
    """Serving's hot path: predict is the first API route matched, and what start-up
    built is exempt from garbage collection (a full collection stalls requests)."""
    gc.unfreeze()
    settings = Settings(site=SITE, cache_dir=str(tmp_path))
    app = create_app(bootstrap(settings, store=MemoryStore()))
    api_routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    assert api_routes[0].path == "/v1/models/{name}/predict"
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0


def test_not_ready_without_a_model(tmp_path: Path) -> None:
    settings = Settings(site=SITE, cache_dir=str(tmp_path))
    with TestClient(create_app(bootstrap(settings, store=MemoryStore()))) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_settings_file_then_env_then_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("site: from-file\npoll_interval: 9\nport: 9001\n")
    monkeypatch.setenv("MILLRACE_EDGE_AGENT_POLL_INTERVAL", "2")
    settings = load_settings(config_file=config, overrides={"port": 9002, "site": None})
    assert (settings.site, settings.poll_interval, settings.port) == ("from-file", 2.0, 9002)
    assert settings.cache_path == Path("./.millrace/edge/from-file")
    config.write_text("sight: typo\n")
    with pytest.raises(InvalidInput, match="sight"):
        load_settings(config_file=config)
    monkeypatch.delenv("MILLRACE_EDGE_AGENT_SITE", raising=False)
    with pytest.raises(InvalidInput, match="site is required"):
        load_settings()


def test_the_agent_imports_without_sqlalchemy_faust_or_sklearn() -> None:
    code = (
        "import pkgutil, importlib, sys, millrace_edge_agent\n"
        "for m in pkgutil.walk_packages(millrace_edge_agent.__path__, 'millrace_edge_agent.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'faust', "
        "'sklearn', 'alembic', 'psycopg'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
    deps = requires("millrace-edge-agent") or []
    assert all("[db]" not in dep and "sqlalchemy" not in dep.lower() for dep in deps)


def test_each_agent_keeps_its_own_instance_id_and_consumer_group(tmp_path: Path) -> None:
    first = bootstrap(Settings(site=SITE, cache_dir=str(tmp_path / "a")), store=MemoryStore())
    again = bootstrap(Settings(site=SITE, cache_dir=str(tmp_path / "a")), store=MemoryStore())
    other = bootstrap(Settings(site=SITE, cache_dir=str(tmp_path / "b")), store=MemoryStore())
    assert first.instance_id == again.instance_id != other.instance_id
    assert group_id_of(SITE, first.instance_id) != group_id_of(SITE, other.instance_id)
    named = Settings(site=SITE, cache_dir=str(tmp_path / "a"), instance_id="gw-2")
    assert bootstrap(named, store=MemoryStore()).instance_id == "gw-2"
    with pytest.raises(InvalidInput, match="instance_id"):
        load_settings(overrides={"site": SITE, "instance_id": "no spaces"})


def test_every_route_is_documented_with_its_body_and_statuses(tmp_path: Path) -> None:
    """/openapi.json is what a client generates from: each route with its request body,
    its answer's model and every error status, in the one error body."""
    app = create_app(bootstrap(Settings(site=SITE, cache_dir=str(tmp_path)), store=MemoryStore()))
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("post", "/v1/datasets/{name}/records"): (
            {"202", "401", "403", "404", "413", "422", "507"},
            "RecordsAccepted",
        ),
        ("get", "/v1/dead-letters"): ({"200", "401", "403", "422"}, "DeadLetters"),
        ("get", "/v1/status"): ({"200", "401", "403"}, "AgentStatus"),
    }
    for (method, path), (statuses, model) in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, path
        ok = next(s for s in statuses if s.startswith("2"))
        answer = operation["responses"][ok]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith(f"/{model}"), path
        for status in statuses - {ok}:
            error = operation["responses"][status]["content"]["application/json"]["schema"]
            assert error["$ref"].endswith("/ErrorBody"), (path, status)
    body = paths["/v1/datasets/{name}/records"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/RecordBatch")
    assert "requestBody" in paths["/v1/models/{name}/predict"]["post"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    status = spec["components"]["schemas"]["AgentStatus"]["properties"]
    assert {"queue_depth", "drops", "mqtt", "prediction_logs", "models"} <= set(status)


def test_bad_records_name_every_field_in_the_one_error_body(
    tmp_path: Path, project_dir: Path
) -> None:
    settings = Settings(site=SITE, cache_dir=str(tmp_path), project=str(project_dir))
    good = {"entity_id": "m-1", "ts": "2026-01-01T00:00:00Z", "temperature": 70.0}
    good |= {"vibration": 0.2, "pressure": 3.0, "speed": 1500.0}
    with TestClient(create_app(bootstrap(settings, store=MemoryStore()))) as client:
        bad = client.post(
            "/v1/datasets/machines/records",
            json={"records": [{**good, "temperature": "hot"}, good, {**good, "speed": None}]},
        )
        assert bad.status_code == 422
        body = bad.json()
        assert body["error"] == "invalid_input" and body["field"] == "records[0].temperature"
        assert [e["field"] for e in body["errors"]] == [
            "records[0].temperature",
            "records[2].speed",
        ]
        assert client.get("/v1/status").json()["queue_depth"] == 0  # none of the batch
        empty = client.post("/v1/datasets/machines/records", json={"records": []})
        assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "records"
        too_many = client.get("/v1/dead-letters", params={"limit": 5000})
        assert too_many.status_code == 422
        assert too_many.json()["errors"][0]["field"].endswith("limit")
        assert client.get("/v1/dead-letters").json() == {"dead_letters": []}


def _agent(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MILLRACE_")}
    return subprocess.run(
        [script("millrace-edge-agent"), "run", *args],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_configuration_error_is_one_line_naming_it_and_exit_1(tmp_path: Path) -> None:
    no_site = _agent(tmp_path, env={})
    assert no_site.returncode == 1
    assert no_site.stderr.strip().splitlines() == [
        "millrace-edge-agent: a site is required (--site or MILLRACE_EDGE_AGENT_SITE)"
    ]
    store = f"file://{tmp_path / 'objects'}"
    unsigned = _agent(tmp_path, "--site", SITE, env={"MILLRACE_OBJECT_STORE": store})
    assert unsigned.returncode == 1
    [line] = unsigned.stderr.strip().splitlines()
    assert "MILLRACE_EDGE_AGENT_TRUSTED_KEY_FILE" in line and "is required" in line
    keyless = _agent(
        tmp_path,
        "--site",
        SITE,
        env={"MILLRACE_OBJECT_STORE": store, "MILLRACE_EDGE_AGENT_ALLOW_UNSIGNED": "true"},
    )
    assert keyless.returncode == 1
    [line] = keyless.stderr.strip().splitlines()
    assert "no credential can be checked" in line and "MILLRACE_AUTH_KEYS_FILE" in line
    aggregate = _agent(
        tmp_path,
        "--site",
        SITE,
        env={
            "MILLRACE_AUTH": "off",
            "MILLRACE_EDGE_AGENT_ALLOW_UNSIGNED": "true",
            "MILLRACE_OBJECT_STORE": f"file://{tmp_path / 'objects'}",
            "MILLRACE_PROJECT": str(tmp_path / "none"),
            "MILLRACE_EDGE_AGENT_FORWARD_URL": "http://127.0.0.1:9",
            "MILLRACE_EDGE_AGENT_FORWARD_MODE": "aggregate",
        },
    )
    assert aggregate.returncode == 1
    [line] = aggregate.stderr.strip().splitlines()
    assert line.startswith("millrace-edge-agent: forward_mode aggregate needs the project folder")
