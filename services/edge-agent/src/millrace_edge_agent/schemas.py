"""The agent's API models: what its routes take and answer (``/openapi.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from millrace_common.contracts import FeatureRowComputed
from millrace_common.predict_api import LoadedModelOut
from pydantic import BaseModel, Field


class RecordBatch(BaseModel):
    """The body ingest takes: ``{"records": [...]}``, each record its dataset's fields,
    entity and time, optionally an ``event_id`` (a resent record is recognised)."""

    records: list[Any] = Field(min_length=1)


class RecordsAccepted(BaseModel):
    accepted: int
    event_ids: list[str]
    queue_depth: int = Field(description="records on disk waiting for the centre, these included")
    rows: list[FeatureRowComputed] | None = Field(
        None,
        description="with ?rows=true: the feature rows these records made at the site (one "
        "per record and feature set of its dataset, in record order), as `features` carries "
        "them from the centre",
    )


class DeadLetterOut(BaseModel):
    received_at: datetime
    source: str = Field(
        description="mqtt: a message no record could be taken from; centre: a record (or "
        "an aggregate) the centre refused for good"
    )
    topic: str = Field(description="the MQTT topic; for source centre, the dataset")
    reason: str = Field(description="why it was refused")
    payload: str = Field(
        description="the message, or the record as sent (UTF-8, undecodable bytes replaced; "
        "its first 64 KiB, the reason says when it was longer)"
    )


class DeadLetters(BaseModel):
    dead_letters: list[DeadLetterOut] = Field(description="newest first")


class MqttOff(BaseModel):
    state: Literal["off"] = "off"


class MqttOn(BaseModel):
    state: Literal["subscribed", "connecting"]
    broker: str = Field(description="the broker's address, without its password")
    topic: str
    messages_queued: int
    messages_invalid: int = Field(description="kept as dead letters")
    last_invalid: str | None
    waiting_for_room: bool = Field(
        description="a full reject-new queue: messages stay with the broker until there is room"
    )


class PredictionLogsOff(BaseModel):
    state: Literal["off"] = "off"


class PredictionLogsOn(BaseModel):
    state: Literal["on"] = "on"
    sample_rate: float
    buffered: int = Field(description="in memory, not on disk yet")
    queue_depth: int
    max_rows: int
    drops: dict[str, int]
    forwarded: int
    last_forward: datetime | None
    forward_failures: int
    last_error: str | None


class FeaturesOff(BaseModel):
    state: Literal["off"] = "off"


class FeaturesOn(BaseModel):
    state: Literal["on"] = "on"
    feature_sets: list[str]
    entities: int = Field(description="entities with an online row at the site")
    readings: int = Field(description="readings kept on disk for the windows")


class AgentStatus(BaseModel):
    """The site's state: its models, its last sync, its queue and its uplink."""

    site: str
    instance_id: str
    models: list[LoadedModelOut] = Field(description="as serving's GET /v1/models lists them")
    last_sync: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int = Field(description="manifest polls that failed in a row")
    model_events: Literal["off", "following", "connecting"]
    mqtt: Annotated[MqttOff | MqttOn, Field(discriminator="state")]
    queue_depth: int
    queue_oldest_age_seconds: float | None
    queue_policy: Literal["reject-new", "drop-oldest"]
    drops: dict[str, int] = Field(description="records that will never reach the centre, by reason")
    dead_letters: int = Field(
        description="kept at GET /v1/dead-letters with their reason: MQTT messages no record "
        "could be taken from, records the centre refused for good (refused_by_centre in drops)"
    )
    forwarded: int
    forward_mode: Literal["raw", "aggregate"]
    aggregate_window_seconds: int | None = Field(description="set in aggregate mode")
    records_in: int = Field(description="queued records the centre now has")
    records_out: int = Field(description="records sent and acknowledged (an aggregate counts once)")
    last_forward: datetime | None
    forward_failures: int
    prediction_logs: Annotated[PredictionLogsOff | PredictionLogsOn, Field(discriminator="state")]
    features: Annotated[
        FeaturesOff | FeaturesOn,
        Field(
            discriminator="state",
            description="the project's feature rows, computed at the site when it has the "
            "project folder",
        ),
    ]
