"""What an operator may do to the models this process serves (the admin routes call it):
load a pinned version or an extra alias, unload one, or re-read a model's aliases from the
registry. A version the registry has as ``rejected`` or ``pending`` is never loaded
(Conflict naming its status). Names and aliases are checked against the registry's rules
before the registry is asked (InvalidInput naming the field); what the registry refuses is
InvalidInput, what it does not have NotFound, and only a registry that does not answer
(or answers an error of its own) is Unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from millrace_common.errors import Conflict, IntegrityError, InvalidInput, NotFound, Unavailable

from millrace_serving.alias_follower import AliasFollower
from millrace_serving.names import check_alias, check_name
from millrace_serving.pinning import pinned_alias
from millrace_serving.swap import Outcome

NOTHING_TO_RELOAD = frozenset({str(Outcome.IGNORED), str(Outcome.ABSENT)})


@dataclass(frozen=True)
class Which:
    """A pinned ``version`` or an ``alias`` of a model (exactly one)."""

    version: int | None = None
    alias: str | None = None

    def slot(self) -> str:
        if (self.version is None) == (self.alias is None):
            raise InvalidInput("send exactly one of 'version' or 'alias'", field="version")
        if self.version is not None:
            return pinned_alias(self.version)
        return check_alias(str(self.alias))

    @property
    def field(self) -> str:
        return "version" if self.version is not None else "alias"

    def __str__(self) -> str:
        return f"version {self.version}" if self.version is not None else f"alias '{self.alias}'"


@dataclass(frozen=True)
class SlotChange:
    model: str
    slot: str
    version: int
    outcome: str


class ModelAdmin:
    def __init__(self, *, follower: AliasFollower) -> None:
        self.follower = follower
        self.swapper = follower.swapper

    async def load(self, *, name: str, version: int | None, alias: str | None) -> SlotChange:
        check_name(name)
        which = Which(version=version, alias=alias)
        slot = which.slot()
        async with _registry_call():
            if which.version is not None:
                outcome = await self.follower.load_version(name=name, version=which.version)
            else:
                target = await self.follower.registry.alias_target(name, slot)
                outcome = Outcome.ABSENT if target is None else await self.swapper.adopt(target)
        if outcome is Outcome.ABSENT:
            raise NotFound(f"the registry has no {which} of model '{name}'", field=which.field)
        if outcome is Outcome.REFUSED:
            why = self.follower.refused.get((name, slot), f"{which} may not be served")
            raise Conflict(f"not loaded: {why}", field="version")
        if outcome is Outcome.FAILED:
            reason = self.swapper.last_failure.get((name, slot), "unknown")
            raise IntegrityError(f"{which} of '{name}' could not be loaded: {reason}")
        model = self.swapper.slots.get(name, slot)
        return SlotChange(model=name, slot=slot, version=model.version, outcome=str(outcome))

    async def unload(self, *, name: str, version: int | None, alias: str | None) -> SlotChange:
        check_name(name)
        which = Which(version=version, alias=alias)
        slot = which.slot()
        removed = await self.swapper.unload(name=name, alias=slot)
        if removed is None:
            raise NotFound(f"{which} of model '{name}' is not loaded", field=which.field)
        return SlotChange(model=name, slot=slot, version=removed.version, outcome="unloaded")

    async def reload(self, *, name: str) -> dict[str, str]:
        """Each alias of ``name`` this process serves, re-read: its outcome. NotFound when
        there was nothing to re-read: no slot of the model is loaded, and the registry has
        none of the aliases served (or this process does not serve the model)."""
        check_name(name)
        async with _registry_call():
            outcomes = await self.follower.reload(name=name)
        if not self.swapper.slots.aliases_of(name) and set(outcomes.values()) <= NOTHING_TO_RELOAD:
            aliases = ", ".join(sorted(outcomes)) or "none"
            if str(Outcome.ABSENT) in outcomes.values():
                raise NotFound(f"the registry has no alias ({aliases}) of model '{name}'")
            raise NotFound(f"model '{name}' is not served by this process", field="name")
        return outcomes


@asynccontextmanager
async def _registry_call() -> AsyncIterator[None]:
    try:
        yield
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise Unavailable(f"the registry answered {status} to {exc.request.url.path}") from None
    except httpx.HTTPError as exc:
        raise Unavailable(f"the registry did not answer ({type(exc).__name__})") from None
