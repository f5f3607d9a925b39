"""Hot swap: load a new version beside the running one, then replace it in one assignment.

The rules: a target for a model or alias this process does not serve is ignored; the
version already loaded is a no-op; any failure keeps the old model and is counted, logged
and reported to ``divergence`` (the gauge and /readyz say what differs from the registry
and why). Loading runs in a worker thread, so requests keep being served meanwhile.

Every model swapped in is written to the on-disk cache (``millrace_common.model_cache``)
with ``current.json`` naming what each slot serves; ``restore`` loads that back at start,
with no network, so a model served before a restart answers after it even while the
registry or the object store is away. The cache is read and written only in worker
threads, never on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from millrace_common.contracts import AliasTarget
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.model_cache import ModelCache
from millrace_common.objectstore import ObjectStore, key_of
from millrace_common.scoring import LoadedModel, LoadFailed, ModelSlots, load_model

from millrace_serving.divergence import Divergences, Slot
from millrace_serving.metrics import LOADED_VERSION, SWAP_FAILURES, SWAPS
from millrace_serving.pinning import pinned_alias

log = structlog.get_logger(__name__)

Fetch = Callable[[], Awaitable[AliasTarget | None]]


class Outcome(StrEnum):
    IGNORED = "ignored"
    ABSENT = "absent"
    UNCHANGED = "unchanged"
    SWAPPED = "swapped"
    FAILED = "failed"
    REFUSED = "refused"
    """The registry says the version must not be served (rejected, pending …)."""


@dataclass(frozen=True)
class Served:
    """Which (model, alias) pairs this process serves; no models named means every model."""

    models: frozenset[str]
    aliases: frozenset[str]

    def covers(self, name: str, alias: str) -> bool:
        return alias in self.aliases and (not self.models or name in self.models)


# failures that loading the same bytes again cannot fix: not fetched again
PERMANENT = frozenset(
    {
        "integrity",
        "invalid_target",
        "sha256_mismatch",
        "external_data",
        "session_open",
        "schema_mismatch",
        "warmup",
    }
)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, LoadFailed):
        return exc.reason
    if isinstance(exc, IntegrityError):
        return "integrity"
    if isinstance(exc, NotFound):
        return "missing_artifact"
    if isinstance(exc, InvalidInput):
        return "invalid_target"
    return "store_unreachable"


class Swapper:
    def __init__(
        self,
        *,
        slots: ModelSlots,
        store: ObjectStore,
        served: Served,
        cache: ModelCache | None = None,
    ) -> None:
        self.slots = slots
        self.store = store
        self.served = served
        self.cache = cache
        self.divergence = Divergences()
        self.targets: dict[Slot, AliasTarget] = {}
        """What each loaded slot serves, as its target (what ``current.json`` lists)."""
        self._cache_lock = threading.Lock()
        self._logged: dict[Slot, tuple[int, str]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # targets that can never load (bad digest, schema, uri): not fetched again
        self._rejected: set[tuple[str, str, int, str]] = set()
        self.extra: set[tuple[str, str]] = set()
        """(model, alias) pairs loaded by an operator beside what the config serves."""
        self.last_failure: dict[tuple[str, str], str] = {}
        self._refused: set[tuple[str, str, int, str]] = set()

    def covers(self, name: str, alias: str) -> bool:
        return self.served.covers(name, alias) or (name, alias) in self.extra

    async def apply(self, target: AliasTarget) -> Outcome:
        if not self.covers(target.name, target.alias):
            return Outcome.IGNORED
        async with self._lock(target.name, target.alias):
            return await self._apply_locked(target)

    async def reconcile(self, *, name: str, alias: str, fetch: Fetch) -> Outcome:
        """Read the authoritative target under the slot's lock, then apply it, so an
        event handled meanwhile is never overtaken by an older registry answer."""
        if not self.covers(name, alias):
            return Outcome.IGNORED
        async with self._lock(name, alias):
            target = await fetch()
            if target is None:
                return Outcome.ABSENT
            return await self._apply_locked(target)

    async def pin(self, target: AliasTarget) -> Outcome:
        """Serve ``target``'s version as itself (requests name it by version)."""
        return await self.adopt(target.model_copy(update={"alias": pinned_alias(target.version)}))

    async def adopt(self, target: AliasTarget) -> Outcome:
        """Serve ``target``'s alias from now on, even if the config does not name it."""
        self.extra.add((target.name, target.alias))
        return await self.apply(target)

    async def unload(self, *, name: str, alias: str) -> LoadedModel | None:
        async with self._lock(name, alias):
            self.extra.discard((name, alias))
            removed = self.slots.remove(name, alias)
            self.targets.pop((name, alias), None)
            self.divergence.in_step((name, alias))
        if removed is not None:
            await asyncio.to_thread(self._remember, None)
            with contextlib.suppress(KeyError):  # never gauged when loaded before a restart
                LOADED_VERSION.remove(name, alias)
            log.info("model_unloaded", model=name, alias=alias, version=removed.version)
        return removed

    def refuse(self, target: AliasTarget, *, reason: str, message: str) -> Outcome:
        """Do not load ``target`` (the old model, if any, stays); counted and logged once
        per version and reason, however often a resync or an operator asks again."""
        self.last_failure[(target.name, target.alias)] = reason
        identity = (target.name, target.alias, target.version, reason)
        if identity not in self._refused:
            self._refused.add(identity)
            SWAP_FAILURES.labels(target.name, reason).inc()
            log.warning(
                "load_refused",
                model=target.name,
                alias=target.alias,
                version=target.version,
                reason=reason,
                error=message,
            )
        return Outcome.REFUSED

    def _lock(self, name: str, alias: str) -> asyncio.Lock:
        return self._locks.setdefault((name, alias), asyncio.Lock())

    async def _apply_locked(self, target: AliasTarget) -> Outcome:
        slot = (target.name, target.alias)
        current = self.slots.find(*slot)
        if current is not None and (current.version, current.sha256) == (
            target.version,
            target.sha256,
        ):
            self.divergence.in_step(slot)
            return Outcome.UNCHANGED
        identity = (target.name, target.alias, target.version, target.sha256)
        if identity in self._rejected:
            self._diverged(target, current, self.last_failure.get(slot, "failed"))
            return Outcome.FAILED
        try:
            model = await asyncio.to_thread(self._load, target)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
            self._failed(target, exc, identity)
            self._diverged(target, current, failure_reason(exc))
            return Outcome.FAILED
        self.slots.swap(target.name, target.alias, model)
        self.targets[slot] = target
        self.divergence.in_step(slot)
        self._logged.pop(slot, None)
        SWAPS.labels(target.name, target.alias).inc()
        LOADED_VERSION.labels(target.name, target.alias).set(target.version)
        await asyncio.to_thread(self._remember, target)
        log.info(
            "model_swapped",
            model=target.name,
            alias=target.alias,
            version=target.version,
            previous=current.version if current else None,
        )
        return Outcome.SWAPPED

    def restore(self, *, pinned: set[Slot] | frozenset[Slot] = frozenset()) -> list[AliasTarget]:
        """Load what ``current.json`` says this process served, from the cache alone (no
        network; call it in a worker thread, before anything else swaps): the slots the
        config serves and the ``pinned`` ones. Each is verified (sha256, schema, warm-up)."""
        if self.cache is None:
            return []
        try:
            listed = self.cache.current()
        except (OSError, ValueError) as exc:
            log.error("cache_unreadable", path=str(self.cache.current_path), error=str(exc))
            return []
        restored = []
        for target in listed:
            slot = (target.name, target.alias)
            if not (self.served.covers(*slot) or slot in pinned):
                continue
            try:
                model = self._from_cache(target)
            except (IntegrityError, InvalidInput, OSError) as exc:
                log.warning(
                    "cache_restore_failed", model=target.name, alias=target.alias, error=str(exc)
                )
                continue
            if slot in pinned:
                self.extra.add(slot)
            self.slots.swap(target.name, target.alias, model)
            self.targets[slot] = target
            LOADED_VERSION.labels(target.name, target.alias).set(target.version)
            restored.append(target)
        return restored

    def _from_cache(self, target: AliasTarget) -> LoadedModel:
        assert self.cache is not None
        data = self.cache.read_verified(target)
        if data is None:
            raise InvalidInput(
                f"v{target.version} is not in the cache, or its sha256 differs", field="cache"
            )
        return _verified(target, data)

    def _load(self, target: AliasTarget) -> LoadedModel:
        """The target's model: from the cache when it holds the same bytes, else from the
        object store (then written to the cache once it has passed its checks)."""
        cached = self.cache.read_verified(target) if self.cache is not None else None
        if cached is not None:
            return _verified(target, cached)
        data = self.store.get(key_of(target.artifact_uri))
        if len(data) != target.size:
            raise LoadFailed(
                f"downloaded {len(data)} bytes, the target has {target.size}",
                reason="corrupt_download",
            )
        model = _verified(target, data)
        if self.cache is not None:
            try:
                self.cache.write(target, data)
            except (OSError, InvalidInput) as exc:  # serving goes on; only a restart needs it
                log.warning("cache_write_failed", model=target.name, error=str(exc))
        return model

    def _remember(self, swapped: AliasTarget | None) -> None:
        """Write ``current.json`` (what every slot serves) and drop old cached versions."""
        if self.cache is None:
            return
        with self._cache_lock:
            try:
                self.cache.set_current(list(self.targets.values()))
                if swapped is not None:
                    self.cache.prune(swapped.name)
            except OSError as exc:
                log.warning("cache_write_failed", path=str(self.cache.root), error=str(exc))

    def _diverged(self, target: AliasTarget, current: LoadedModel | None, reason: str) -> None:
        self.divergence.diverged(
            (target.name, target.alias),
            reason=reason,
            served=current.version if current is not None else None,
            target=target.version,
        )

    def _failed(
        self, target: AliasTarget, exc: Exception, identity: tuple[str, str, int, str]
    ) -> None:
        reason = failure_reason(exc)
        if reason in PERMANENT:
            self._rejected.add(identity)
        slot = (target.name, target.alias)
        self.last_failure[slot] = reason
        SWAP_FAILURES.labels(target.name, reason).inc()
        # a target retried while its artifact stays away: one warning, then debug lines
        repeated = self._logged.get(slot) == (target.version, reason)
        self._logged[slot] = (target.version, reason)
        (log.debug if repeated else log.warning)(
            "swap_failed",
            model=target.name,
            alias=target.alias,
            version=target.version,
            reason=reason,
            error=str(exc),
        )


def _verified(target: AliasTarget, data: bytes) -> LoadedModel:
    return load_model(
        name=target.name,
        version=target.version,
        data=data,
        sha256=target.sha256,
        schema=target.model_schema,
    )
