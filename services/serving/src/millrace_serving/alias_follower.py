"""Keeps the versions this process serves in step with the registry: each served alias
and each pinned version, read from the registry (authoritative) at start-up and on every
resync, and moved by ``model-published`` events in between. Its sibling
``traffic_follower`` does the same for the models' traffic policies."""

from __future__ import annotations

import asyncio
from functools import partial

import structlog
from millrace_common.contracts import AliasTarget, ModelPublished

from millrace_serving.adapters.registry import Registry
from millrace_serving.pinning import is_pinned, pinned_alias, refusal
from millrace_serving.swap import Outcome, Swapper

log = structlog.get_logger(__name__)


class AliasFollower:
    def __init__(
        self, *, swapper: Swapper, registry: Registry, pins: list[tuple[str, int]] | None = None
    ) -> None:
        self.swapper = swapper
        self.registry = registry
        self.pins = list(pins or [])
        """(model, version) pairs served as themselves, from MILLRACE_SERVING_VERSIONS."""
        self.expected: set[tuple[str, str]] = set()
        """The (model, alias) pairs the registry said exist at the last sync."""
        self.refused: dict[tuple[str, str], str] = {}
        """Why a pinned (model, slot) was not loaded, from its registry status."""
        self.synced = False

    async def on_event(self, event: ModelPublished) -> Outcome:
        outcome = await self.swapper.apply(AliasTarget.from_event(event))
        log.info(
            "model_published_handled",
            model=event.name,
            alias=event.alias,
            version=event.version,
            outcome=str(outcome),
        )
        return outcome

    async def sync_from_registry(self) -> None:
        served = self.swapper.served
        names = sorted(served.models) or await self.registry.model_names()
        expected: set[tuple[str, str]] = set()
        for name in names:
            for alias in sorted(served.aliases):
                fetch = partial(self.registry.alias_target, name, alias)
                outcome = await self.swapper.reconcile(name=name, alias=alias, fetch=fetch)
                if outcome is not Outcome.ABSENT:
                    expected.add((name, alias))
        for name, version in self.pins:
            if await self.load_version(name=name, version=version) is not Outcome.ABSENT:
                expected.add((name, pinned_alias(version)))
        self.expected = expected
        self.synced = True

    async def load_version(self, *, name: str, version: int) -> Outcome:
        """Pin ``version`` if the registry has it and its status allows serving it."""
        found = await self.registry.registered_version(name, version)
        if found is None:
            return Outcome.ABSENT
        slot = (name, pinned_alias(version))
        refused = refusal(found)
        if refused is not None:
            self.refused[slot] = refused.message
            return self.swapper.refuse(found.target, reason=refused.reason, message=refused.message)
        self.refused.pop(slot, None)
        return await self.swapper.pin(found.target)

    async def reload(self, *, name: str) -> dict[str, str]:
        """Re-read every alias of ``name`` this process serves from the registry."""
        aliases = {a for n, a in self.swapper.extra if n == name and not is_pinned(a)}
        aliases |= set(self.swapper.served.aliases)
        outcomes = {}
        for alias in sorted(aliases):
            fetch = partial(self.registry.alias_target, name, alias)
            outcomes[alias] = str(await self.swapper.reconcile(name=name, alias=alias, fetch=fetch))
        return outcomes

    async def sync_until_done(self, *, max_delay: float = 5.0) -> None:
        """The first sync: retry with backoff until the registry answers."""
        delay = 0.2
        while True:
            try:
                await self.sync_from_registry()
                log.info("registry_synced", models=sorted(f"{n}:{a}" for n, a in self.expected))
                return
            except Exception as exc:  # noqa: BLE001 - unreachable or 5xx: try again
                log.warning("registry_unreachable", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(max_delay, delay * 2)

    async def resync_forever(self, *, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_from_registry()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("registry_resync_failed", error=repr(exc))

    def readiness(self) -> tuple[bool, str]:
        if not self.synced:
            return False, "waiting for the registry"
        slots = self.swapper.slots
        missing = [(n, a) for n, a in sorted(self.expected) if slots.find(n, a) is None]
        if not missing:
            return True, f"{len(slots)} model(s) loaded"
        waiting = [f"{n}:{a}" for n, a in missing if (n, a) not in self.refused]
        refused = [
            f"{n}:{a} refused: {self.refused[n, a]}" for n, a in missing if (n, a) in self.refused
        ]
        parts = ([f"not loaded yet: {', '.join(waiting)}"] if waiting else []) + refused
        return False, "; ".join(parts)
