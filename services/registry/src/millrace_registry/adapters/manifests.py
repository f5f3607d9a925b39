"""Site manifests (``sites/<site-id>/manifest.json``) written from the current DB state.

Rewriting is an idempotent overwrite, so it is safe to repeat after a crash: the relay
rewrites the manifests of the sites following an alias before it publishes the move.
Writers of one site (the relay, a deployment change, another registry process) take
turns, each reading the state while holding the site, so the last manifest written is
never older than the last change committed before its writer started.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import structlog
from millrace_common.contracts import AliasTarget, SiteManifest
from millrace_common.objectstore import ObjectStore
from millrace_common.signing import Signer
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters.rows import alias_target

log = structlog.get_logger(__name__)


def manifest_key(site_id: str) -> str:
    return f"sites/{site_id}/manifest.json"


def site_targets(session: Session, *, site_id: str) -> list[AliasTarget]:
    """What each model a site follows points at now (models without that alias are left out)."""
    targets = []
    for deployment in repo.deployments_of(session, site_id=site_id):
        model, alias = deployment.model, deployment.alias
        version = repo.alias_version(session, name=model, alias=alias)
        row = repo.get_version(session, name=model, version=version) if version else None
        if row is not None:
            targets.append(alias_target(row, alias=alias))
    return targets


class ManifestWriter:
    def __init__(
        self, *, factory: sessionmaker[Session], store: ObjectStore, signer: Signer | None = None
    ) -> None:
        self._factory = factory
        self._store = store
        self._signer = signer
        self._sites = repo.SiteLocks(factory)

    def write_site(self, *, site_id: str) -> SiteManifest:
        # read and put while holding the site: a writer that read older state cannot put
        # after one that read newer state
        read = partial(site_targets, site_id=site_id)
        with self._sites.hold(site_id, read=read) as targets:
            manifest = SiteManifest(site=site_id, models=targets, updated_at=datetime.now(UTC))
            if self._signer is not None:
                manifest = self._signer.sign_manifest(manifest)
            self._store.put(
                manifest_key(site_id),
                manifest.model_dump_json(by_alias=True).encode(),
                content_type="application/json",
            )
        log.info(
            "site_manifest_written",
            site=site_id,
            models=len(targets),
            signed=manifest.signature is not None,
        )
        return manifest

    def write_following(self, *, model: str, alias: str) -> list[str]:
        """Rewrite the manifest of every site that follows ``model``'s ``alias``."""
        with self._factory() as session:
            sites = repo.sites_following(session, model=model, alias=alias)
        for site_id in sites:
            self.write_site(site_id=site_id)
        return sites
