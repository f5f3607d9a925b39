"""Keeping a site's models in step with its manifest (``sites/<site>/manifest.json``).

Synchronous on purpose: the agent runs it in a worker thread, and tests call it
directly. A model is verified (digest, schema, warm-up) before anything on disk or in
memory changes; the cache is written before ``current.json``, and ``current.json``
before the swap, so a crash at any point leaves a loadable last-known-good state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from millrace_common.contracts import AliasTarget, SiteManifest
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.objectstore import ReadableStore, key_of, sha256_hex
from millrace_common.scoring import LoadedModel, ModelSlots, load_model
from millrace_common.signing import SignatureInvalid, Verifier
from pydantic import ValidationError

from millrace_edge_agent.adapters.cache import ModelCache
from millrace_edge_agent.metrics import (
    LAST_SYNC,
    LOADED_VERSION,
    ROLLBACKS,
    SWAP_FAILURES,
    SWAPS,
)
from millrace_edge_agent.probation import Probation, ProbationWatch

log = structlog.get_logger(__name__)


def manifest_key(site: str) -> str:
    return f"sites/{site}/manifest.json"


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, SignatureInvalid):
        return "untrusted_manifest"
    if isinstance(exc, NotFound):
        return "missing_manifest"
    if isinstance(exc, InvalidInput):
        return "invalid_manifest"
    return "store_unreachable"


@dataclass
class SyncStatus:
    last_sync: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    etag: str | None = None

    def failed(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = datetime.now(UTC)


Identity = tuple[str, str, int, str]
"""(name, alias, version, sha256): one manifest entry."""


def identity_of(target: AliasTarget) -> Identity:
    return target.name, target.alias, target.version, target.sha256


class Syncer:
    def __init__(
        self,
        *,
        site: str,
        store: ReadableStore,
        cache: ModelCache,
        slots: ModelSlots,
        verifier: Verifier | None = None,
        probation: ProbationWatch | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.cache = cache
        self.slots = slots
        self.verifier = verifier
        """Set: manifests and models must carry the registry's signature."""
        self.probation = probation
        """Set: a model swapped in over a good one is on probation (see ``probation``)."""
        self.status = SyncStatus()
        self.targets: dict[tuple[str, str], AliasTarget] = {}
        self.listed: set[str] | None = None
        """The model names the last manifest read listed (None: none read yet)."""
        self._rejected: dict[Identity, str] = _refused(cache)
        # the request path rolls back while a worker thread may be installing
        self._lock = threading.RLock()

    def restore(self) -> int:
        """Load ``current.json``'s models from disk, with no network; return how many."""
        try:
            targets = self.cache.current()
        except (OSError, ValueError) as exc:
            log.error("cache_unreadable", path=str(self.cache.current_path), error=str(exc))
            return 0
        for target in targets:
            try:
                if self.verifier is not None:
                    self.verifier.verify_target(target)
                data = self._cached(target)
                if data is None:
                    raise NotFound(f"{target.name} v{target.version} is not in the cache")
                model = _load(target, data)
            except (NotFound, IntegrityError, InvalidInput, OSError) as exc:
                log.warning("cache_restore_failed", model=target.name, error=str(exc))
                continue
            self.targets[(target.name, target.alias)] = target
            self._swap(target, model)
        return len(self.targets)

    def sync_once(self) -> bool:
        """Poll the manifest and apply it; return whether it had changed.

        Raises when the store cannot be read or the manifest is invalid."""
        fetched = self.store.get_if_changed(manifest_key(self.site), self.status.etag)
        if fetched is None:
            self._synced()
            return False
        data, etag = fetched
        manifest = parse_manifest(data, site=self.site)
        if self.verifier is not None:  # raises: nothing of an untrusted manifest is used
            self.verifier.verify_manifest(manifest)
        self.listed = {t.name for t in manifest.models}
        errors = [e for e in (self._apply(t) for t in manifest.models) if e is not None]
        if not errors:
            self.status.etag = etag  # otherwise read it again next time and retry
        self._synced()
        if errors:
            self.status.failed("; ".join(errors))
        return True

    def _synced(self) -> None:
        self.status.last_sync = datetime.now(UTC)
        self.status.consecutive_failures = 0
        LAST_SYNC.set(self.status.last_sync.timestamp())

    def _apply(self, target: AliasTarget) -> str | None:
        current = self.slots.find(target.name, target.alias)
        if current is not None and current.version == target.version:
            return None
        identity = identity_of(target)
        if identity in self._rejected:
            return self._rejected[identity]  # known bad: not fetched again
        try:
            if self.verifier is not None:
                self.verifier.verify_target(target)
            cached = self._cached(target)
            data = cached if cached is not None else self.store.get(key_of(target.artifact_uri))
            model = _load(target, data)
        except (IntegrityError, InvalidInput) as exc:
            return self._reject(target, identity, exc)
        except NotFound as exc:  # not uploaded yet, perhaps: tried again next poll
            return self._failed(target, "missing_artifact", exc)
        self._install(target, model, data, write=cached is None)
        return None

    def _install(
        self, target: AliasTarget, model: LoadedModel, data: bytes, *, write: bool
    ) -> None:
        if write:
            self.cache.write(target, data)
        with self._lock:
            previous = self.targets.get((target.name, target.alias))
            running = self.slots.find(target.name, target.alias)
            self.targets[(target.name, target.alias)] = target
            self.cache.set_current(list(self.targets.values()))
            if (
                self.probation is not None
                and previous is not None
                and running is not None
                and running.version == previous.version
            ):  # watched before it answers
                self.probation.watch(
                    alias=target.alias,
                    target=target,
                    model=model,
                    previous_target=previous,
                    previous=running,
                )
            self._swap(target, model)
        removed = self.cache.prune(target.name)
        log.info(
            "model_swapped",
            model=target.name,
            alias=target.alias,
            version=target.version,
            previous=previous.version if previous else None,
            pruned=removed,
        )

    def rollback(self, probation: Probation, reason: str) -> None:
        """Put the last-known-good model back, refuse the bad one for good (also after a
        restart), and report it. Called on the request path, so it only swaps and
        writes two small files."""
        bad, good = probation.target, probation.fallback_target
        message = f"{bad.name} v{bad.version} rolled back to v{good.version}: {reason}"
        with self._lock:
            running = self.slots.find(bad.name, probation.alias)
            if running is not None and running.version == bad.version:
                self.targets[(bad.name, probation.alias)] = good
                self._swap(good, probation.fallback)
            self._rejected[identity_of(bad)] = message
            self.cache.refuse(identity_of(bad), message)
            self.cache.set_current(list(self.targets.values()))
            in_use = any(
                t.name == bad.name and t.version == bad.version for t in self.targets.values()
            )
        if not in_use:
            self.cache.discard(bad.name, bad.version)
        ROLLBACKS.labels(bad.name).inc()
        SWAP_FAILURES.labels(bad.name, "health").inc()
        self.status.failed(message)
        log.error(
            "model_rolled_back",
            model=bad.name,
            alias=probation.alias,
            version=bad.version,
            to_version=good.version,
            reason=reason,
        )

    def _reject(self, target: AliasTarget, identity: Identity, exc: Exception) -> str:
        reason = (
            "signature"
            if isinstance(exc, SignatureInvalid)
            else "integrity"
            if isinstance(exc, IntegrityError)
            else "invalid_target"
        )
        self._rejected[identity] = self._failed(target, reason, exc)
        return self._rejected[identity]

    def _failed(self, target: AliasTarget, reason: str, exc: Exception) -> str:
        SWAP_FAILURES.labels(target.name, reason).inc()
        log.warning(
            "swap_failed",
            model=target.name,
            alias=target.alias,
            version=target.version,
            reason=reason,
            error=str(exc),
        )
        return f"{target.name} v{target.version}: {exc}"

    def _cached(self, target: AliasTarget) -> bytes | None:
        data = self.cache.read(target.name, target.version)
        return data if data is not None and sha256_hex(data) == target.sha256 else None

    def _swap(self, target: AliasTarget, model: LoadedModel) -> None:
        self.slots.swap(target.name, target.alias, model)
        SWAPS.labels(target.name, target.alias).inc()
        LOADED_VERSION.labels(target.name, target.alias).set(target.version)


def _refused(cache: ModelCache) -> dict[Identity, str]:
    """What was rolled back before; an unreadable list must not stop the agent serving."""
    try:
        return cache.refused()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("refused_list_unreadable", path=str(cache.refused_path), error=str(exc))
        return {}


def parse_manifest(data: bytes, *, site: str) -> SiteManifest:
    try:
        manifest = SiteManifest.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid site manifest: {exc}", field="manifest") from None
    if manifest.site != site:
        raise InvalidInput(
            f"the manifest is for site '{manifest.site}', not '{site}'", field="manifest.site"
        )
    return manifest


def _load(target: AliasTarget, data: bytes) -> LoadedModel:
    if sha256_hex(data) != target.sha256:  # checked first: nothing unverified is parsed
        raise IntegrityError(f"sha256 mismatch: expected {target.sha256}, got {sha256_hex(data)}")
    return load_model(  # refuses a model with external data (scoring.open_session)
        name=target.name,
        version=target.version,
        data=data,
        sha256=target.sha256,
        schema=target.model_schema,
    )
