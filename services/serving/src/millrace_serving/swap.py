"""Hot swap: load a new version beside the running one, then replace it in one assignment.

The rules: a target for a model or alias this process does not serve is ignored; the
version already loaded is a no-op; any failure keeps the old model and is counted and
logged. Loading runs in a worker thread, so requests keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from millrace_common.contracts import AliasTarget
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.objectstore import ObjectStore, key_of
from millrace_common.scoring import LoadedModel, LoadFailed, ModelSlots, load_model

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
    {"integrity", "invalid_target", "sha256_mismatch", "session_open", "schema_mismatch", "warmup"}
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
    return "download"


class Swapper:
    def __init__(self, *, slots: ModelSlots, store: ObjectStore, served: Served) -> None:
        self.slots = slots
        self.store = store
        self.served = served
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
        if removed is not None:
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
        current = self.slots.find(target.name, target.alias)
        if current is not None and current.version == target.version:
            return Outcome.UNCHANGED
        identity = (target.name, target.alias, target.version, target.sha256)
        if identity in self._rejected:
            return Outcome.FAILED
        try:
            model = await asyncio.to_thread(self._load, target)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
            self._failed(target, exc, identity)
            return Outcome.FAILED
        self.slots.swap(target.name, target.alias, model)
        SWAPS.labels(target.name, target.alias).inc()
        LOADED_VERSION.labels(target.name, target.alias).set(target.version)
        log.info(
            "model_swapped",
            model=target.name,
            alias=target.alias,
            version=target.version,
            previous=current.version if current else None,
        )
        return Outcome.SWAPPED

    def _load(self, target: AliasTarget) -> LoadedModel:
        data = self.store.get(key_of(target.artifact_uri))
        if len(data) != target.size:
            raise LoadFailed(
                f"downloaded {len(data)} bytes, the target has {target.size}",
                reason="corrupt_download",
            )
        return load_model(
            name=target.name,
            version=target.version,
            data=data,
            sha256=target.sha256,
            schema=target.model_schema,
        )

    def _failed(
        self, target: AliasTarget, exc: Exception, identity: tuple[str, str, int, str]
    ) -> None:
        reason = failure_reason(exc)
        if reason in PERMANENT:
            self._rejected.add(identity)
        self.last_failure[(target.name, target.alias)] = reason
        SWAP_FAILURES.labels(target.name, reason).inc()
        log.warning(
            "swap_failed",
            model=target.name,
            alias=target.alias,
            version=target.version,
            reason=reason,
            error=str(exc),
        )
