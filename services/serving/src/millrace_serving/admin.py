"""Admin routes (the ``admin`` scope when API keys are configured): load a pinned version
or an extra alias, unload one, or reload a model's aliases from the registry. A version the
registry has as ``rejected`` or ``pending`` is never loaded (409 naming its status)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from millrace_common.errors import Conflict, IntegrityError, InvalidInput, NotFound
from pydantic import BaseModel, ConfigDict

from millrace_serving.follow import ModelFollower
from millrace_serving.swap import Outcome, pinned_alias


class Which(BaseModel):
    """A pinned ``version`` or an ``alias`` (exactly one)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = None
    alias: str | None = None

    def slot(self) -> str:
        if (self.version is None) == (self.alias is None):
            raise InvalidInput("send exactly one of 'version' or 'alias'", field="version")
        return pinned_alias(self.version) if self.version is not None else str(self.alias)


def admin_router(follower: ModelFollower) -> APIRouter:
    router = APIRouter(prefix="/v1/admin/models")
    swapper = follower.swapper

    @router.post("/{name}/load")
    async def load(name: str, body: Which) -> dict[str, Any]:
        slot = body.slot()
        if body.version is not None:
            outcome = await follower.load_version(name=name, version=body.version)
        else:
            target = await follower.registry.alias_target(name, slot)
            outcome = Outcome.ABSENT if target is None else await swapper.adopt(target)
        if outcome is Outcome.ABSENT:
            raise NotFound(
                f"the registry has no {_what(body)} of model '{name}'",
                field="version" if body.version is not None else "alias",
            )
        if outcome is Outcome.REFUSED:
            why = follower.refused.get((name, slot), f"{_what(body)} may not be served")
            raise Conflict(f"not loaded: {why}", field="version")
        if outcome is Outcome.FAILED:
            reason = swapper.last_failure.get((name, slot), "unknown")
            raise IntegrityError(f"{_what(body)} of '{name}' could not be loaded: {reason}")
        model = swapper.slots.get(name, slot)
        return {"model": name, "slot": slot, "version": model.version, "outcome": str(outcome)}

    @router.post("/{name}/unload")
    async def unload(name: str, body: Which) -> dict[str, Any]:
        slot = body.slot()
        removed = await swapper.unload(name=name, alias=slot)
        if removed is None:
            raise NotFound(
                f"{_what(body)} of model '{name}' is not loaded",
                field="version" if body.version is not None else "alias",
            )
        return {"model": name, "slot": slot, "version": removed.version, "outcome": "unloaded"}

    @router.post("/{name}/reload")
    async def reload(name: str) -> dict[str, Any]:
        return {"model": name, "aliases": await follower.reload(name=name)}

    return router


def _what(body: Which) -> str:
    return f"version {body.version}" if body.version is not None else f"alias '{body.alias}'"
