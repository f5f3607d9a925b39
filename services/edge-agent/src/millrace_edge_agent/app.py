"""The Millrace edge agent: keeps a site's models in step with its manifest, scores
locally over serving's REST API, buffers local records and prediction logs on disk and
forwards them to the centre when the link is up; with the project folder, turns the
records into the project's feature rows (the centre's engine) and answers predictions by
entity id from them. The composition root (``bootstrap``),
the app and ``main`` (``millrace-edge-agent run --site SITE [--config FILE]``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI
from millrace_common.dataplane import DataPlane
from millrace_common.errors import InvalidInput, MillraceError
from millrace_common.http import include_flat
from millrace_common.objectstore import ReadableStore, open_store
from millrace_common.predict_api import predict_router
from millrace_common.project import Project, load_project
from millrace_common.scoring import ModelSlots
from millrace_common.service import health_routes, run, secure, service_app
from millrace_common.signing import Verifier

from millrace_edge_agent.access import RULES
from millrace_edge_agent.adapters.cache import ModelCache, instance_id
from millrace_edge_agent.adapters.centre import (
    HeartbeatSink,
    IngestSink,
    PredictionLogSink,
    RecordSink,
    RegistryHeartbeats,
)
from millrace_edge_agent.adapters.kafka import ModelEvents, group_id_of
from millrace_edge_agent.adapters.mqtt import BrokerAddress, MqttRecords
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.registry_store import REGISTRY_SCHEME, RegistryStore
from millrace_edge_agent.aggregate_forwarder import AggregatingForwarder
from millrace_edge_agent.api import router
from millrace_edge_agent.config import Settings, load_settings
from millrace_edge_agent.forwarder import Forwarder, PredictionLogForwarder
from millrace_edge_agent.heartbeat import Heartbeats
from millrace_edge_agent.intake import RecordIntake
from millrace_edge_agent.mqtt_intake import MessageIntake, TopicPattern
from millrace_edge_agent.polling import ManifestPoller
from millrace_edge_agent.prediction_logs import PredictionLogBuffer
from millrace_edge_agent.probation import ProbationWatch
from millrace_edge_agent.runtime import Runtime
from millrace_edge_agent.site_features import SiteFeatures
from millrace_edge_agent.status import describe, heartbeat_of
from millrace_edge_agent.sync import Syncer

NO_ONLINE_STORE = (
    "the edge agent has no online feature store without the project folder "
    "(MILLRACE_PROJECT), so it cannot look up entity_ids: send 'instances' with the features"
)
QUIET = ("urllib3",)
"""The minio client's retries would log five lines per failed poll; ``sync_failed``
says it once."""
SILENT = ("aiokafka", "millrace_edge_agent.mqtt.paho")
"""They log every failed connection at ERROR; ``model_events_unavailable`` and
``mqtt_unavailable`` say it once, with backoff."""


def bootstrap(
    settings: Settings,
    *,
    store: ReadableStore | None = None,
    sink: RecordSink | None = None,
    heartbeat_sink: HeartbeatSink | None = None,
    prediction_sink: PredictionLogSink | None = None,
) -> Runtime:
    """Everything the agent runs on, built once; ``store`` and the sinks are the ports
    tests replace (default: from ``settings``)."""
    # no bucket check here: the agent must start, and serve from disk, with the store down
    store = store or site_store(settings)
    closers: list[IngestSink | RegistryHeartbeats] = []
    if sink is None and settings.forward_url:
        sink = IngestSink(settings.forward_url, headers=settings.bearer())
        closers.append(sink)
        prediction_sink = prediction_sink or sink
    if heartbeat_sink is None and settings.registry_url:
        heartbeat_sink = RegistryHeartbeats(settings.registry_url, headers=settings.bearer())
        closers.append(heartbeat_sink)
    slots = ModelSlots()
    syncer, probation = make_syncer(settings, store=store, slots=slots)
    poller = ManifestPoller(
        syncer=syncer, interval=settings.poll_interval, max_backoff=settings.max_backoff
    )
    queues = open_queues(settings)
    project = open_project(settings.project)
    forwarder = (
        make_forwarder(settings, queues=queues, sink=sink, project=project) if sink else None
    )
    prediction_forwarder, prediction_logs = make_prediction_logs(
        settings, queues=queues, sink=prediction_sink
    )
    agent = settings.instance_id or instance_id(settings.cache_path)
    features = (
        SiteFeatures(project=project, tables=queues.features, max_windows=settings.max_windows)
        if project is not None
        else None
    )
    intake = RecordIntake(
        queue=queues.records,
        project=project,
        max_records=settings.max_records_per_request,
        max_record_bytes=settings.max_record_bytes,
        on_stored=forwarder.wakeup.set if forwarder is not None else None,
        features=features,
    )
    mqtt_intake, mqtt = (
        make_mqtt(settings, intake=intake, queues=queues, instance=agent)
        if settings.mqtt_url
        else (None, None)
    )
    runtime = Runtime(
        settings=settings,
        slots=slots,
        syncer=syncer,
        poller=poller,
        plane=make_plane(settings, slots=slots, probation=probation, logs=prediction_logs),
        queues=queues,
        intake=intake,
        project=project,
        features=features,
        instance_id=agent,
        forwarder=forwarder,
        events=make_events(settings, poller=poller, instance=agent),
        mqtt=mqtt,
        mqtt_intake=mqtt_intake,
        prediction_logs=prediction_logs,
        prediction_forwarder=prediction_forwarder,
        closers=closers,
    )
    if heartbeat_sink is not None:
        runtime.heartbeats = Heartbeats(
            site=settings.site,
            queue=queues.heartbeats,
            sink=heartbeat_sink,
            state=lambda: heartbeat_of(describe(runtime)),
            interval=settings.heartbeat_interval,
        )
    return runtime


def open_queues(settings: Settings) -> Queues:
    """The site's queue file, with its bounds."""
    return Queues.open(
        settings.queue_path,
        max_rows=settings.queue_max_rows,
        max_age=settings.queue_max_age,
        policy=settings.queue_policy,
        max_prediction_logs=settings.prediction_log_max_rows,
    )


def open_project(path: str) -> Project | None:
    """The project, when the site has its folder; ``None`` means "validate the minimum"."""
    if not path or not (Path(path) / "millrace.yaml").is_file():
        return None
    return load_project(path)


def site_store(settings: Settings) -> ReadableStore:
    """Where the site's manifest and models come from: ``registry+http://…`` reads them
    through the registry with the site's own credential (no key to the object store at
    the site); any other URL is the object store itself."""
    if settings.object_store.startswith(REGISTRY_SCHEME):
        return RegistryStore(
            settings.object_store.removeprefix(REGISTRY_SCHEME),
            site=settings.site,
            headers=settings.bearer(),
        )
    return open_store(settings.object_store, create_bucket=False)


def make_syncer(
    settings: Settings, *, store: ReadableStore, slots: ModelSlots
) -> tuple[Syncer, ProbationWatch]:
    """The manifest's models into ``slots``, each new one on probation."""
    if not settings.trusted_key_file and not settings.allow_unsigned:
        raise InvalidInput(
            "MILLRACE_EDGE_AGENT_TRUSTED_KEY_FILE (the registry's public key) is required: "
            "a site runs only signed models (MILLRACE_EDGE_AGENT_ALLOW_UNSIGNED=true to take "
            "unsigned ones)",
            field="trusted_key_file",
        )
    verifier = (
        Verifier.from_pem_file(settings.trusted_key_file) if settings.trusted_key_file else None
    )
    syncer = Syncer(
        site=settings.site,
        store=store,
        cache=ModelCache(settings.cache_path),
        slots=slots,
        verifier=verifier,
    )
    probation = ProbationWatch(
        on_rollback=syncer.rollback,
        window=settings.health_window,
        window_seconds=settings.health_window_seconds,
        max_error_rate=settings.health_max_error_rate,
    )
    syncer.probation = probation
    return syncer, probation


def make_plane(
    settings: Settings,
    *,
    slots: ModelSlots,
    probation: ProbationWatch,
    logs: PredictionLogBuffer | None,
) -> DataPlane:
    """Scoring as serving does it, through the probation watch, logging each answer."""
    return DataPlane(
        slots=slots,
        run=probation.run,
        recover=probation.recover,
        sink=logs.offer if logs is not None else None,
        log_sample_rate=settings.prediction_sample_rate,
    )


def make_events(settings: Settings, *, poller: ManifestPoller, instance: str) -> ModelEvents | None:
    """``model-published`` as a nudge to poll now, when a broker is configured."""
    if not (settings.broker and settings.follow_kafka):
        return None
    return ModelEvents(
        bootstrap=settings.broker,
        site=settings.site,
        instance=instance,
        on_event=poller.model_event,
        stop_timeout=settings.stop_timeout / 4,  # leaving the group, within the stop
    )


def make_mqtt(
    settings: Settings, *, intake: RecordIntake, queues: Queues, instance: str
) -> tuple[MessageIntake, MqttRecords]:
    """The MQTT intake, its client id the agent's own, like its Kafka group."""
    pattern = TopicPattern.parse(settings.mqtt_topic, site=settings.site)
    messages = MessageIntake(
        site=settings.site,
        pattern=pattern,
        project=intake.project,
        store=intake.store,
        dead_letters=queues.dead_letters,
        max_records=min(settings.max_records_per_request, settings.queue_max_rows),
        max_message_bytes=settings.max_body_bytes,
        max_record_bytes=settings.max_record_bytes,
    )
    client = MqttRecords(
        address=BrokerAddress.parse(settings.mqtt_url),
        client_id=group_id_of(settings.site, instance),
        topic_filter=pattern.filter,
        on_messages=messages.take,
    )
    return messages, client


def make_prediction_logs(
    settings: Settings, *, queues: Queues, sink: PredictionLogSink | None
) -> tuple[PredictionLogForwarder | None, PredictionLogBuffer | None]:
    """Prediction logs to disk, and from there to the centre when it is configured."""
    if settings.prediction_sample_rate == 0:
        return None, None
    forwarder = (
        PredictionLogForwarder(
            queue=queues.prediction_logs,
            sink=sink,
            batch_size=settings.forward_batch,
            retry_cap=settings.forward_retry_cap,
        )
        if sink is not None
        else None
    )
    buffer = PredictionLogBuffer(
        queue=queues.prediction_logs,
        site=settings.site,
        max_buffer=settings.prediction_log_buffer,
        on_stored=forwarder.wakeup.set if forwarder is not None else None,
    )
    return forwarder, buffer


def make_forwarder(
    settings: Settings, *, queues: Queues, sink: RecordSink, project: Project | None
) -> Forwarder:
    if settings.forward_mode == "raw":
        return Forwarder(
            queue=queues.records,
            sink=sink,
            batch_size=settings.forward_batch,
            retry_cap=settings.forward_retry_cap,
        )
    if project is None:
        raise InvalidInput(
            "forward_mode aggregate needs the project folder, to know the "
            f"datasets' fields (MILLRACE_PROJECT={settings.project!r} has no "
            "millrace.yaml)",
            field="forward_mode",
        )
    return AggregatingForwarder(
        queue=queues.records,
        windows=queues.windows,
        sink=sink,
        batch_size=settings.forward_batch,
        retry_cap=settings.forward_retry_cap,
        project=project,
        site=settings.site,
        width=settings.aggregate_window_seconds,
        grace=settings.aggregate_grace_seconds,
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = service_app(runtime, title="Millrace edge agent", description=__doc__, health=False)
    # routes are matched in order, each a cost on every request: the scoring routes first
    include_flat(
        app,
        predict_router(
            runtime.slots,
            lookup=runtime.features.lookup if runtime.features is not None else None,
            no_lookup_message=NO_ONLINE_STORE,
            plane=runtime.plane,
        ),
    )
    health_routes(app, runtime)
    app.include_router(router)
    secure(app, runtime.settings, RULES, database=False)
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="millrace-edge-agent", description="Keep a site's models and score locally."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("run", help="run the agent for one site")
    command.add_argument("--site", help="the site id (or MILLRACE_EDGE_AGENT_SITE)")
    command.add_argument("--config", help="a YAML/JSON file of settings")
    command.add_argument("--port", type=int, help="HTTP port (default 8060)")
    command.add_argument("--cache-dir", help="default ./.millrace/edge/<site>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """A configuration error is one line on stderr and exit 1, never a trace."""
    args = parse_args(argv)
    try:
        settings = load_settings(
            config_file=args.config,
            overrides={"site": args.site, "port": args.port, "cache_dir": args.cache_dir},
        )
    except MillraceError as exc:
        raise SystemExit(f"millrace-edge-agent: {exc.message}") from None
    run(
        "edge-agent",
        settings,
        lambda: create_app(bootstrap(settings)),
        quiet=QUIET,
        silent=SILENT,
        drain_timeout=settings.stop_timeout / 2,
    )


if __name__ == "__main__":
    main()
