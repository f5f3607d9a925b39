"""Training on demand (the retrain policy "on demand"): cut a fresh snapshot of a model's
feature set now and queue its train request through the outbox, like the automatic policy
(``POST /v1/models/{model}/train-requests``)."""

from __future__ import annotations

import structlog
from millrace_common.contracts import TrainRequest
from millrace_common.errors import Conflict, NotFound
from millrace_common.objectstore import ObjectStore
from millrace_common.project import Project
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.snapshots import labelled_count, snapshot_and_request

log = structlog.get_logger(__name__)


class TrainAsk(BaseModel):
    """The body of an on-demand train request."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="on demand", min_length=1, max_length=2000)
    requested_by: str = Field(default="api", min_length=1, max_length=200)
    upload_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="evaluate this registry upload on the snapshot instead of training",
    )


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
        upload_id=ask.upload_id,
    )
    log.info(
        "train_requested_on_demand",
        model=model,
        request_id=request.request_id,
        snapshot=request.snapshot.uri,
        rows=request.snapshot.rows,
        requested_by=ask.requested_by,
        upload_id=ask.upload_id,
    )
    return request
