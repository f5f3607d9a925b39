"""serving's own routes, under ``/v1/admin`` (the ``admin`` scope when API keys are
configured): load, unload and reload models, and the traffic policies applied. The
scoring routes are the shared transports of ``millrace_common.predict_api`` and
``millrace_common.inference_protocol``."""

from __future__ import annotations

from fastapi import APIRouter
from millrace_common.http import errors
from pydantic import BaseModel, ConfigDict, Field

from millrace_serving.access import ACCESS_ERRORS
from millrace_serving.admin import SlotChange
from millrace_serving.deps import AdminDep, TrafficDep

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=errors(*ACCESS_ERRORS))


class SlotRequest(BaseModel):
    """A pinned ``version`` or an ``alias`` (exactly one)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = None
    alias: str | None = None


class SlotChanged(BaseModel):
    model: str
    slot: str = Field(description="the alias, or v<version> for a pinned version")
    version: int
    outcome: str = Field(description="swapped, unchanged or unloaded")

    @classmethod
    def of(cls, change: SlotChange) -> SlotChanged:
        return cls.model_validate(change, from_attributes=True)


class Reloaded(BaseModel):
    model: str
    aliases: dict[str, str] = Field(description="each alias served: swapped, unchanged …")


class TrafficPolicyOut(BaseModel):
    mode: str = Field(description="canary, shadow, sticky or none")
    challenger_alias: str | None = None
    percent: float | None = None
    key_field: str | None = None
    source: str = Field(description="env (MILLRACE_SERVING_TRAFFIC) or registry")
    challenger_version: int | None = Field(None, description="the challenger loaded, if any")


@router.post(
    "/models/{name}/load", response_model=SlotChanged, responses=errors(404, 409, 422, 503)
)
async def load(name: str, body: SlotRequest, admin: AdminDep) -> SlotChanged:
    """Load a pinned version or an extra alias from the registry: 404 when it has none,
    409 when its status forbids serving it, 422 when the name, alias or version is one the
    registry refuses or the model fails its checks."""
    change = await admin.load(name=name, version=body.version, alias=body.alias)
    return SlotChanged.of(change)


@router.post("/models/{name}/unload", response_model=SlotChanged, responses=errors(404, 422))
async def unload(name: str, body: SlotRequest, admin: AdminDep) -> SlotChanged:
    """Stop serving a pinned version or an alias."""
    change = await admin.unload(name=name, version=body.version, alias=body.alias)
    return SlotChanged.of(change)


@router.post("/models/{name}/reload", response_model=Reloaded, responses=errors(404, 422, 503))
async def reload(name: str, admin: AdminDep) -> Reloaded:
    """Re-read every alias of the model this process serves from the registry: 404 when
    none of it is loaded and the registry has none of its aliases served, 422 for a name
    the registry would refuse."""
    return Reloaded(model=name, aliases=await admin.reload(name=name))


@router.get("/traffic", response_model=dict[str, TrafficPolicyOut])
async def traffic(follower: TrafficDep) -> dict[str, TrafficPolicyOut]:
    """Each model's traffic policy as applied now, where it came from, and the
    challenger version that would answer."""
    return {name: TrafficPolicyOut.model_validate(doc) for name, doc in follower.describe().items()}
