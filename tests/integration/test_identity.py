"""Identity on a real database and a real identity provider: keys made and revoked with
``millrace keys`` in Postgres, the audit log naming the authenticated principal, and OIDC
JWTs verified against a JWKS served over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from millrace_cli.main import app as cli
from millrace_registry.app import create_app
from typer.testing import CliRunner

from tests.support.identity import database_keys
from tests.support.registry import registration, registry_runtime

MOVE = "/v1/models/m/aliases/staging"


def make_key(database_url: str, name: str, *roles: str) -> str:
    """A key made as an operator makes one: ``millrace keys create``; its token."""
    args = ["keys", "create", "--name", name, "--database-url", database_url]
    for role in roles:
        args += ["--role", role]
    made = CliRunner().invoke(cli, args)
    assert made.exit_code == 0, made.output
    return made.output.strip().splitlines()[-1]


@pytest.fixture
def registry(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A registry started with nothing but its database: authentication is required."""
    monkeypatch.delenv("MILLRACE_AUTH", raising=False)
    runtime = registry_runtime(database_url)
    assert runtime.settings.auth == "required"
    with TestClient(create_app(runtime)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_anonymous_alias_move_is_refused_and_the_audit_names_the_principal(
    registry: TestClient, database_url: str
) -> None:
    trainer = make_key(database_url, "trainer-1", "trainer")
    deployer = make_key(database_url, "dana", "deployer")
    for request_id in ("r1", "r2"):
        body = registration(request_id, 0.8)
        posted = registry.post("/v1/models/m/versions", json=body, headers=bearer(trainer))
        assert posted.status_code == 201, posted.text

    anonymous = registry.post(MOVE, json={"version": 2, "reason": "try"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    claimed = {"version": 2, "reason": "ship it", "actor": "mallory"}
    moved = registry.post(MOVE, json=claimed, headers=bearer(deployer))
    assert moved.status_code == 200, moved.text

    audit = registry.get("/v1/models/m/audit", headers=bearer(deployer)).json()
    move = next(e for e in audit if e["action"] == "alias_moved" and e["alias"] == "staging")
    assert move["actor"] == "dana"  # the principal; the body's "mallory" is ignored
    promoted = next(e for e in audit if e["action"] == "promoted")
    assert promoted["actor"] == "trainer-1"  # not the body's default, "trainer"


def test_only_the_trainer_registers_a_version_ready(
    registry: TestClient, database_url: str
) -> None:
    scientist = bearer(make_key(database_url, "sam", "scientist"))
    ready = registry.post("/v1/models/m/versions", json=registration("r1", 0.8), headers=scientist)
    assert ready.status_code == 403 and ready.json()["field"] == "status"
    pending = registration("r2", 0.8, status="pending")
    made = registry.post("/v1/models/m/versions", json=pending, headers=scientist)
    assert made.status_code == 201 and made.json()["status"] == "pending"
    checks = registry.post(
        "/v1/models/m/versions/1/checks", json={"passed": True}, headers=scientist
    )
    assert checks.status_code == 403  # the checks are the trainer's to record


def test_a_revoked_key_is_refused(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILLRACE_AUTH", raising=False)
    tokens = database_keys(database_url, roles=("scientist",))
    with TestClient(create_app(registry_runtime(database_url, auth_cache_seconds=0))) as client:
        assert client.get("/v1/models", headers=bearer(tokens["scientist"])).status_code == 200
        listed = CliRunner().invoke(cli, ["keys", "list", "--database-url", database_url, "--json"])
        assert [k["name"] for k in json.loads(listed.output)] == ["scientist"]
        assert "mr_" not in listed.output  # never a secret
        revoked = CliRunner().invoke(
            cli, ["keys", "revoke", "scientist", "--database-url", database_url]
        )
        assert revoked.exit_code == 0, revoked.output
        refused = client.get("/v1/models", headers=bearer(tokens["scientist"]))
        assert refused.status_code == 401
        again = CliRunner().invoke(
            cli, ["keys", "revoke", "nobody", "--database-url", database_url]
        )
        assert again.exit_code == 1 and "no live key" in again.output


# --- OIDC ---------------------------------------------------------------------------------


class Provider:
    """An identity provider as a service sees it: discovery and JWKS over HTTP."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {"jwks_uri": f"{provider.url}/jwks"},
                    "/jwks": jwks,
                }
                body = json.dumps(documents.get(self.path, {})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, *, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": "millrace", "sub": "u-42", "iat": now, "exp": now + 300}
        return jwt.encode(
            {**body, **claims}, key or self.key, algorithm="RS256", headers={"kid": "k1"}
        )


@pytest.fixture
def provider() -> Iterator[Provider]:
    found = Provider()
    yield found
    found.server.shutdown()


def test_oidc_tokens_are_verified_against_the_issuers_keys(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MILLRACE_AUTH", raising=False)
    runtime = registry_runtime(f"sqlite:///{tmp_path}/registry.db", auth_oidc_issuer=provider.url)
    client = TestClient(create_app(runtime))

    def status(token: str) -> int:
        return client.get("/v1/models", headers=bearer(token)).status_code

    assert status(provider.token(roles=["scientist"])) == 200
    assert status(provider.token(roles="deployer scientist")) == 200  # a string of roles
    assert status(provider.token(roles=["producer"])) == 403  # known, not allowed to read
    assert status(provider.token()) == 403  # no roles at all
    assert status(provider.token(roles=["scientist"], exp=int(time.time()) - 60)) == 401
    assert status(provider.token(roles=["scientist"], aud="another-app")) == 401
    assert status(provider.token(roles=["scientist"], iss="https://elsewhere")) == 401
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert status(provider.token(roles=["scientist"], key=stranger)) == 401
    moved = client.post(
        "/v1/models/m/aliases/staging",
        json={"version": 1, "reason": "r"},
        headers=bearer(provider.token(roles=["deployer"])),
    )
    assert moved.status_code == 404  # let through: there is no model m
