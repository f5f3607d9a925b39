"""Query parameters and response headers several routes share."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request, Response
from millrace_common.identity import actor_of
from pydantic import BaseModel

from millrace_registry.schemas import BIGINT_MAX

VersionPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="a version number")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
TagFilter = Annotated[list[str] | None, Query(description="key or key=value; repeatable")]
Reason = Annotated[str, Query(min_length=1, max_length=2000, description="why (audited)")]


async def _actor(
    request: Request,
    actor: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="who (audited); ignored unless authentication is off: the "
            "authenticated principal is recorded",
        ),
    ] = "api",
) -> str:
    return actor_of(request, actor)


Actor = Annotated[str, Depends(_actor)]
"""Who the audit log names: the caller's principal (the client's claim when auth is off)."""

Audited = TypeVar("Audited", bound=BaseModel)


def signed(request: Request, body: Audited) -> Audited:
    """``body`` with its ``actor`` the authenticated principal, whatever the client sent."""
    return body.model_copy(update={"actor": actor_of(request, body.actor)})  # type: ignore[attr-defined]


def paged(response: Response, total: int) -> None:
    """Tell a paging client how many items there are in all."""
    response.headers["X-Total-Count"] = str(total)


BYTES: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {}}}}
"""``responses=`` of a route that answers a file's bytes."""

PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "X-Total-Count": {
                "description": "how many items match, over every page",
                "schema": {"type": "integer"},
            }
        }
    }
}


def also(status: int, model: type[BaseModel], description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a second success status a route may answer, with its document."""
    return {status: {"model": model, "description": description}}
