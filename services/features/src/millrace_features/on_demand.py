"""Training on demand (the retrain policy "on demand"): cut a fresh snapshot of a model's
feature set now and queue its train request through the outbox, like the automatic policy.

    POST /v1/models/{model}/train-requests   {"reason": "...", "requested_by": "..."}
    → 202 {"request_id", "model", "snapshot": {...}, "reason", "requested_by", ...}
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from millrace_common.contracts import TrainRequest
from millrace_common.errors import Conflict, InvalidInput, MillraceError, NotFound
from millrace_common.objectstore import ObjectStore
from millrace_common.project import Project
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.snapshots import labelled_count, snapshot_and_request

log = structlog.get_logger(__name__)
_STATUS = {NotFound: 404, Conflict: 409, InvalidInput: 422}


class TrainAsk(BaseModel):
    """The body of an on-demand train request."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="on demand", min_length=1, max_length=2000)
    requested_by: str = Field(default="api", min_length=1, max_length=200)


def parse_ask(body: bytes) -> TrainAsk:
    """An empty body means the defaults; anything else must be a valid ``TrainAsk``."""
    if not body.strip():
        return TrainAsk()
    try:
        return TrainAsk.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None


def request_training(
    *,
    factory: sessionmaker[Session],
    store: ObjectStore,
    project: Project,
    model: str,
    ask: TrainAsk,
) -> TrainRequest:
    """A fresh snapshot and its train request, or why there cannot be one."""
    spec = project.models.get(model)
    if spec is None:
        raise NotFound(f"no model '{model}' in the project", field="model")
    feature_set = project.feature_set(spec.feature_set)
    with factory() as session:
        labelled = labelled_count(session, feature_set.name)
    if labelled == 0:
        raise Conflict(
            f"feature set '{feature_set.name}' has no labelled rows yet; "
            f"nothing to train '{model}' on",
            field="model",
        )
    request = snapshot_and_request(
        factory=factory,
        store=store,
        feature_set=feature_set,
        model=spec,
        reason=ask.reason,
        requested_by=ask.requested_by,
    )
    log.info(
        "train_requested_on_demand",
        model=model,
        request_id=request.request_id,
        snapshot=request.snapshot.uri,
        rows=request.snapshot.rows,
        requested_by=ask.requested_by,
    )
    return request


def accepted(request: TrainRequest) -> dict[str, Any]:
    return orjson.loads(request.model_dump_json())  # type: ignore[no-any-return]


def error_answer(exc: MillraceError) -> tuple[dict[str, Any], int]:
    """The body and status of a refused request (the registry's error shape)."""
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    return body, status
