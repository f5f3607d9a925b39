"""What the agent reports about itself: ``GET /v1/status`` and, condensed, the heartbeat
the registry keeps per site."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from millrace_common.predict_api import LoadedModelOut
from millrace_common.predict_api import describe as describe_model

from millrace_edge_agent.schemas import (
    AgentStatus,
    DeadLetterOut,
    FeaturesOff,
    FeaturesOn,
    MqttOff,
    MqttOn,
    PredictionLogsOff,
    PredictionLogsOn,
)

if TYPE_CHECKING:
    from millrace_edge_agent.adapters.queue.dead_letters import DeadLetter
    from millrace_edge_agent.runtime import Runtime


def describe(runtime: Runtime) -> AgentStatus:
    status = runtime.syncer.status
    queue = runtime.queues.records
    forward = runtime.forwarder.status if runtime.forwarder else None
    age = queue.oldest_age()
    aggregate = runtime.settings.forward_mode == "aggregate"
    return AgentStatus(
        site=runtime.settings.site,
        instance_id=runtime.instance_id,
        models=[
            LoadedModelOut(**describe_model(model, alias))
            for (_n, alias), model in runtime.slots.items()
        ],
        last_sync=status.last_sync,
        last_error=last_error(runtime),
        last_error_at=status.last_error_at,
        consecutive_failures=status.consecutive_failures,
        model_events=_model_events(runtime),
        mqtt=_mqtt(runtime),
        queue_depth=queue.depth(),
        queue_oldest_age_seconds=round(age, 3) if age is not None else None,
        queue_policy=queue.policy,
        drops=queue.drops(),
        dead_letters=runtime.queues.dead_letters.count(),
        forwarded=forward.forwarded if forward else 0,
        forward_mode=runtime.settings.forward_mode,
        aggregate_window_seconds=runtime.settings.aggregate_window_seconds if aggregate else None,
        records_in=forward.records_in if forward else 0,
        records_out=forward.forwarded if forward else 0,
        last_forward=forward.last_forward if forward else None,
        forward_failures=forward.consecutive_failures if forward else 0,
        prediction_logs=_prediction_logs(runtime),
        features=_features(runtime),
    )


def heartbeat_of(status: AgentStatus) -> dict[str, Any]:
    """What the registry keeps per site (JSON-ready)."""
    drops = sum(status.drops.values())
    logs = status.prediction_logs
    return {
        "site": status.site,
        "models": [{"name": m.name, "alias": m.alias, "version": m.version} for m in status.models],
        "last_sync": status.last_sync.isoformat() if status.last_sync else None,
        "queue_depth": status.queue_depth,
        "drops": drops,
        "refused_by_centre": status.drops.get("refused_by_centre", 0),
        "dead_letters": status.dead_letters,
        "prediction_log_drops": sum(logs.drops.values()) if logs.state == "on" else 0,
        "last_error": status.last_error,
    }


def dead_letter_out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        received_at=datetime.fromtimestamp(letter.received_at, UTC),
        source=letter.source,
        topic=letter.topic,
        reason=letter.reason,
        payload=letter.payload.decode("utf-8", errors="replace"),
    )


def last_error(runtime: Runtime) -> str | None:
    """The forwarder's while it fails, else the last sync's."""
    forward = runtime.forwarder.status if runtime.forwarder else None
    if forward is not None and forward.consecutive_failures:
        return forward.last_error
    return runtime.syncer.status.last_error


def _model_events(runtime: Runtime) -> Literal["off", "following", "connecting"]:
    if runtime.events is None:
        return "off"
    return "following" if runtime.events.following.is_set() else "connecting"


def _mqtt(runtime: Runtime) -> MqttOff | MqttOn:
    if runtime.mqtt is None or runtime.mqtt_intake is None:
        return MqttOff()
    status = runtime.mqtt_intake.status
    return MqttOn(
        state="subscribed" if runtime.mqtt.subscribed.is_set() else "connecting",
        broker=str(runtime.mqtt.address),
        topic=runtime.mqtt.topic_filter,
        messages_queued=status.queued,
        messages_invalid=status.invalid,
        last_invalid=status.last_invalid,
        waiting_for_room=status.waiting_for_room,
    )


def _features(runtime: Runtime) -> FeaturesOff | FeaturesOn:
    if runtime.features is None:
        return FeaturesOff()
    entities, readings = runtime.queues.features.sizes()
    return FeaturesOn(
        feature_sets=sorted(runtime.features.project.feature_sets),
        entities=entities,
        readings=readings,
    )


def _prediction_logs(runtime: Runtime) -> PredictionLogsOff | PredictionLogsOn:
    buffer = runtime.prediction_logs
    if buffer is None:
        return PredictionLogsOff()
    queue = runtime.queues.prediction_logs
    drops = queue.drops()
    if buffer.lost:  # not on disk yet: written with the next batch
        drops["buffer_full"] = drops.get("buffer_full", 0) + buffer.lost
    forward = runtime.prediction_forwarder.status if runtime.prediction_forwarder else None
    return PredictionLogsOn(
        sample_rate=runtime.settings.prediction_sample_rate,
        buffered=buffer.buffered,
        queue_depth=queue.depth(),
        max_rows=queue.max_rows,
        drops=drops,
        forwarded=forward.forwarded if forward else 0,
        last_forward=forward.last_forward if forward else None,
        forward_failures=forward.consecutive_failures if forward else 0,
        last_error=forward.last_error if forward else None,
    )
