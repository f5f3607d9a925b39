"""Ed25519 trust: the registry signs each site manifest and every model digest in it; a
site holding the registry's public key refuses an unsigned, mis-signed or altered
manifest or model, reports it, and keeps answering with the model it has."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from fastapi.testclient import TestClient
from millrace_cli.processes import wait_until
from millrace_common.contracts import SiteManifest
from millrace_common.db import migrate
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_common.signing import SignatureInvalid, Signer, Verifier, manifest_payload
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.status import describe
from millrace_edge_agent.sync import manifest_key
from millrace_registry import app as registry_app
from millrace_registry.adapters.tables import SCHEMA
from millrace_registry.config import Settings as RegistrySettings

from tests.support.models import build_model
from tests.support.predicting import predict_loop

SITE = "plant-signed"
MODEL = "machine-failure"


def key_pair(root: Path, name: str) -> tuple[Path, Path]:
    """A PEM private key and its public key, as ``openssl genpkey -algorithm ed25519``
    and ``openssl pkey -pubout`` write them."""
    private = root / f"{name}.pem"
    private.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    public = root / f"{name}.pub.pem"
    public.write_bytes(Signer.from_pem_file(private).public_pem())
    return private, public


def manifest_of(store: MemoryStore, version: int, *, seed: int | None = None) -> SiteManifest:
    artifact = build_model(seed=seed if seed is not None else version)
    store.put(artifact.key(MODEL, version), artifact.data)
    target = artifact.target(store, name=MODEL, version=version)
    return SiteManifest(site=SITE, models=[target], updated_at=datetime.now(UTC))


def put(store: MemoryStore, manifest: SiteManifest) -> None:
    store.put(manifest_key(SITE), manifest.model_dump_json(by_alias=True).encode())


def test_the_registry_signs_site_manifests_and_model_digests(tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "registry")
    store = MemoryStore()

    async def no_broker() -> Any:
        raise OSError("no broker in this test")

    settings = RegistrySettings(
        database_url=f"sqlite:///{tmp_path}/registry.db", signing_key_file=str(private)
    )
    runtime = registry_app.bootstrap(settings, store=store, connect_producer=no_broker)
    migrate(runtime.engine, schema=SCHEMA, versions=registry_app.MIGRATIONS)
    artifact = build_model(seed=1)
    store.put(artifact.key(MODEL, 1), artifact.data)
    with TestClient(registry_app.create_app(runtime)) as client:
        registered = client.post(
            f"/v1/models/{MODEL}/versions",
            json={
                "request_id": "r1",
                "artifact_uri": store.uri(artifact.key(MODEL, 1)),
                "sha256": artifact.sha256,
                "size": len(artifact.data),
                "schema": artifact.schema.model_dump(),
                "metrics": {"f1": 0.9},
                "promotion": {"metric": "f1", "direction": "maximize", "margin": 0.0},
            },
        )
        assert registered.status_code == 201, registered.text
        deployed = client.put(f"/v1/sites/{SITE}/deployments/{MODEL}", json={"alias": "production"})
        assert deployed.status_code in (200, 201), deployed.text
    runtime.engine.dispose()
    manifest = SiteManifest.model_validate_json(store.get(manifest_key(SITE)))
    verifier = Verifier.from_pem_file(public)
    verifier.verify_manifest(manifest)
    verifier.verify_target(manifest.models[0])
    altered = manifest.models[0].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(SignatureInvalid):
        verifier.verify_target(altered)
    with pytest.raises(SignatureInvalid):
        verifier.verify_manifest(manifest.model_copy(update={"models": [altered]}))


def test_an_unreadable_key_is_a_one_line_refusal_at_start(tmp_path: Path) -> None:
    garbage = tmp_path / "key.pem"
    garbage.write_text("not a key")
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key"):
        Signer.from_pem_file(garbage)
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        Verifier.from_pem_file(garbage)
    with pytest.raises(InvalidInput, match="cannot read the trusted key"):
        Verifier.from_pem_file(tmp_path / "missing.pem")
    private, _public = key_pair(tmp_path, "only-private")
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        Verifier.from_pem_file(private)  # the private key given where the public one goes


def test_unsigned_and_mis_signed_models_are_refused_while_the_old_one_answers(
    tmp_path: Path,
) -> None:
    private, public = key_pair(tmp_path, "registry")
    other, _ = key_pair(tmp_path, "someone-else")
    registry, impostor = Signer.from_pem_file(private), Signer.from_pem_file(other)
    store = MemoryStore()
    put(store, registry.sign_manifest(manifest_of(store, 1)))
    settings = Settings(
        site=SITE,
        cache_dir=str(tmp_path / "edge"),
        poll_interval=3600,
        trusted_key_file=str(public),
        broker="",
    )
    runtime = bootstrap(settings, store=store)
    with TestClient(create_app(runtime)) as client:
        with predict_loop(client, model=MODEL, ready="signed version 1 to load") as answers:
            unsigned = manifest_of(store, 2)
            entry = manifest_of(store, 3)
            mis_signed_entry = entry.model_copy(
                update={"models": [impostor.sign_target(entry.models[0])]}
            )
            mis_signed_entry = mis_signed_entry.model_copy(  # the manifest itself is valid
                update={"signature": registry.sign(manifest_payload(mis_signed_entry))}
            )
            signed = registry.sign_manifest(manifest_of(store, 4))
            swapped_artifact = signed.model_copy(
                update={
                    "models": [
                        signed.models[0].model_copy(update={"sha256": build_model(seed=9).sha256})
                    ]
                }
            )
            cases = [
                (unsigned, "untrusted_manifest", "is not signed"),
                (
                    impostor.sign_manifest(manifest_of(store, 5)),
                    "untrusted_manifest",
                    "bad signature",
                ),
                (swapped_artifact, "untrusted_manifest", "bad signature"),
                (mis_signed_entry, None, f"{MODEL} v3 has a bad signature"),
            ]
            for manifest, poll_failure, reason in cases:
                put(store, manifest)
                failed_before = runtime.syncer.status.consecutive_failures
                _poll(runtime)
                assert reason in (describe(runtime).last_error or ""), reason
                assert runtime.slots.get(MODEL).version == 1
                if poll_failure:
                    assert runtime.syncer.status.consecutive_failures == failed_before + 1
            put(store, registry.sign_manifest(manifest_of(store, 6)))
            _poll(runtime)
            wait_until(lambda: answers.versions[-1:] == [6], timeout=10, what="signed v6 to answer")
        metrics = client.get("/metrics").text
    assert answers.failures == []
    assert set(answers.versions) == {1, 6} and answers.versions == sorted(answers.versions)
    assert 'millrace_edge_sync_failures_total{reason="untrusted_manifest"}' in metrics
    assert (
        'millrace_edge_swap_failures_total{model="machine-failure",reason="signature"}' in metrics
    )
    for refused in (2, 3, 4, 5):
        assert not (tmp_path / "edge" / "models" / MODEL / str(refused)).exists()


def _poll(runtime: Any) -> None:
    asyncio.run(runtime.poller.poll_once())
