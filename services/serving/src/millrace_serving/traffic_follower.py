"""Keeps each model's traffic policy in step with the registry (the sibling of
``alias_follower``, which does the same for the versions served): read at start, then polled
every ``MILLRACE_SERVING_TRAFFIC_INTERVAL`` seconds. A policy that needs a challenger
alias this process does not serve loads it first (through the safe swap), so the split
starts only once the challenger can answer; a challenger loaded for a policy is unloaded
when the policy stops needing it.

Precedence: ``MILLRACE_SERVING_TRAFFIC`` names models whose policy is fixed by the
environment (offline use, tests); the registry decides for every other model. An
unreachable registry or a policy serving cannot apply keeps the current policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from millrace_common.contracts import AliasTarget

from millrace_serving.swap import Swapper
from millrace_serving.traffic import BadPolicy, Policy, TrafficSelector, policy_from_registry

log = structlog.get_logger(__name__)
Source = Literal["env", "registry"]


class PolicySource(Protocol):
    async def model_names(self) -> list[str]: ...

    async def alias_target(self, name: str, alias: str) -> AliasTarget | None: ...

    async def traffic_policy(self, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Applied:
    policy: Policy | None
    source: Source


class TrafficFollower:
    def __init__(
        self,
        *,
        selector: TrafficSelector,
        registry: PolicySource,
        swapper: Swapper,
        overrides: dict[str, Policy],
    ) -> None:
        self.selector = selector
        self.registry = registry
        self.swapper = swapper
        self.overrides = dict(overrides)
        self.applied: dict[str, Applied] = {n: Applied(p, "env") for n, p in overrides.items()}
        self.adopted: set[tuple[str, str]] = set()
        """Challenger slots this follower loaded (and so may unload)."""
        self.started = False
        """True once the first read from the registry was attempted."""

    async def sync(self) -> None:
        """One pass over every served model; raises only if the model list is unreadable."""
        for name in await self._names():
            try:
                await self.sync_model(name)
            except BadPolicy as exc:
                log.warning("traffic_policy_invalid", model=name, field=exc.field, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - keep the current policy, retry later
                log.warning("traffic_sync_failed", model=name, error=repr(exc))

    async def sync_model(self, name: str) -> None:
        applied = await self._wanted(name)
        policy = applied.policy
        await self._load_challenger(name, policy)
        self._apply(name, applied)
        await self._release(name, keep=None if policy is None else policy.challenger)

    async def _wanted(self, name: str) -> Applied:
        if name in self.overrides:
            return Applied(self.overrides[name], "env")
        doc = await self.registry.traffic_policy(name)
        return Applied(None if doc is None else policy_from_registry(doc), "registry")

    async def start(self) -> None:
        """The first read (never raises: the registry was just reachable, and without it
        models keep the environment's policies or none)."""
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001
            log.warning("traffic_sync_failed", error=repr(exc))
        self.started = True

    async def follow_forever(self, *, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("traffic_sync_failed", error=repr(exc))

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each model's policy as applied now, where it came from, who would answer."""
        slots = self.swapper.slots
        out = {}
        for name, applied in sorted(self.applied.items()):
            doc = applied.policy.describe() if applied.policy else {"mode": "none"}
            challenger = slots.find(name, applied.policy.challenger) if applied.policy else None
            out[name] = doc | {
                "source": applied.source,
                "challenger_version": challenger.version if challenger else None,
            }
        return out

    async def _names(self) -> list[str]:
        served = self.swapper.served.models
        names = set(served) if served else set(await self.registry.model_names())
        return sorted(names | (set(self.overrides) if not served else set()))

    async def _load_challenger(self, name: str, policy: Policy | None) -> None:
        """Load (or refresh) the challenger the policy needs, unless the config serves it
        anyway (then the resync and model-published keep it current)."""
        if policy is None or self.swapper.served.covers(name, policy.challenger):
            return
        slot = (name, policy.challenger)
        target = await self.registry.alias_target(name, policy.challenger)
        if target is None:
            await self._release(name, keep=None)  # the alias is gone: so is its split
            return
        if slot not in self.swapper.extra:
            self.adopted.add(slot)
        await self.swapper.adopt(target)

    def _apply(self, name: str, applied: Applied) -> None:
        if self.applied.get(name, Applied(None, "registry")) == applied:
            return
        self.selector.set_policy(name, applied.policy)
        self.applied[name] = applied
        policy = applied.policy
        log.info(
            "traffic_policy_changed",
            model=name,
            source=applied.source,
            mode=policy.mode if policy else "none",
            percent=policy.percent if policy else None,
            challenger=policy.challenger if policy else None,
        )

    async def _release(self, name: str, *, keep: str | None) -> None:
        for slot in sorted(s for s in self.adopted if s[0] == name and s[1] != keep):
            self.adopted.discard(slot)
            await self.swapper.unload(name=name, alias=slot[1])
