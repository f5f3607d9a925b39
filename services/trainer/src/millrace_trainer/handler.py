"""Handle one train request: snapshot in, registered model version out.

Artifacts are keyed by the train request (``models/<name>/<request_id>/model.onnx`` and
``model-card.json``) because the registry assigns the version number only when the model
is registered. A request already registered is skipped before any work, so an artifact is
only ever rewritten while no version refers to it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from millrace_common.contracts import TrainRequest
from millrace_common.errors import MillraceError, Unavailable
from millrace_common.objectstore import ObjectStore, get_verified, key_of, sha256_hex
from millrace_common.project import FeatureSet, ModelSpec, Project, load_project

from millrace_trainer import lineage
from millrace_trainer.adapters.registry_client import RegistryPort
from millrace_trainer.errors import TrainingError
from millrace_trainer.metrics import RUN_SECONDS, RUNS
from millrace_trainer.pipeline import (
    Candidate,
    ChampionResult,
    Timings,
    evaluate_champion,
    train,
)
from millrace_trainer.runs import Run, fail_interrupted
from millrace_trainer.uploaded import evaluate_upload

log = structlog.get_logger(__name__)


class TrainService:
    def __init__(
        self,
        *,
        project_path: str,
        store: ObjectStore,
        registry: RegistryPort,
        lock_file: str | None = None,
        trainer: str = "",
    ) -> None:
        self._project_path = project_path
        self._store = store
        self._registry = registry
        self._lock_file = lock_file
        self.trainer = trainer

    async def fail_interrupted(self) -> int:
        """Fail the runs a previous life of this trainer left ``running``."""
        models = list(load_project(self._project_path).models)
        return await fail_interrupted(registry=self._registry, models=models, trainer=self.trainer)

    async def registry_answers(self) -> bool:
        return await self._registry.reachable()

    async def handle(self, request: TrainRequest) -> dict[str, Any]:
        """Train, check, upload and register; a request registered before is a no-op."""
        existing = await self._registry.find_version(
            name=request.model, request_id=request.request_id
        )
        if existing is not None:
            log.info(
                "train_request_already_registered",
                model=request.model,
                request_id=request.request_id,
                version=existing["version"],
            )
            RUNS.labels(request.model, "duplicate").inc()
            return existing
        with RUN_SECONDS.time():
            try:
                version = await self._train_and_register(request)
            except Exception:
                RUNS.labels(request.model, "failed").inc()
                raise
        RUNS.labels(request.model, version["status"]).inc()
        return version

    async def _train_and_register(self, request: TrainRequest) -> dict[str, Any]:
        project = load_project(self._project_path)
        spec = project.model(request.model)
        feature_set = project.feature_set(spec.feature_set)
        # from here on the request names a real model: every attempt is a recorded run
        run = Run(
            model=request.model,
            request_id=request.request_id,
            store=self._store,
            registry=self._registry,
            trainer=self.trainer,
        )
        params = {} if request.upload_id is not None else spec.params  # an upload fits nothing
        await run.start(params=params)
        timer = Timings()
        try:
            version = await self._attempt(
                request, project=project, spec=spec, feature_set=feature_set, run=run, timer=timer
            )
        except Exception as exc:
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            await run.fail(reason=reason, params=params, timings=timer.seconds)
            raise
        return version

    async def _attempt(
        self,
        request: TrainRequest,
        *,
        project: Project,
        spec: ModelSpec,
        feature_set: FeatureSet,
        run: Run,
        timer: Timings,
    ) -> dict[str, Any]:
        _check_snapshot(request, feature_set)
        log.info(
            "training_started",
            model=request.model,
            request_id=request.request_id,
            snapshot=request.snapshot.uri,
            rows=request.snapshot.rows,
        )
        with timer("download"):
            snapshot = await asyncio.to_thread(
                get_verified, self._store, key_of(request.snapshot.uri), request.snapshot.sha256
            )
        upload = await self._upload(request)
        if upload is None:
            candidate = await asyncio.to_thread(
                train,
                name=request.model,
                spec=spec,
                features=feature_set.feature_names,
                snapshot=snapshot,
                project_root=project.root,
            )
        else:
            with timer("download"):
                onnx, samples = await asyncio.to_thread(self._uploaded_files, upload)
            candidate = await asyncio.to_thread(
                evaluate_upload,
                name=request.model,
                spec=spec,
                features=feature_set.feature_names,
                snapshot=snapshot,
                onnx=onnx,
                sha256=upload["sha256"],
                samples=samples,
            )
        timer.seconds.update(candidate.timings)
        with timer("champion"):
            champion = await self._champion(request.model, candidate)
        body = await asyncio.to_thread(
            self._publish_artifacts,
            request=request,
            project=project,
            spec=spec,
            feature_set=feature_set,
            candidate=candidate,
            champion=champion,
            timer=timer,
            upload=upload,
        )
        return await self._register(request, run=run, candidate=candidate, body=body, timer=timer)

    async def _register(
        self,
        request: TrainRequest,
        *,
        run: Run,
        candidate: Candidate,
        body: dict[str, Any],
        timer: Timings,
    ) -> dict[str, Any]:
        """Register the version with its finished run: the run's log is written first, and
        the registry stores the version and the run's end in one transaction."""
        report = await run.conclude(
            status="succeeded" if body["status"] == "ready" else "rejected",
            params=candidate.params,
            metrics=candidate.metrics,
            timings=timer.seconds,
            failure_reason=body["rejection_reason"],
            details={
                "data": candidate.data,
                "checks": body["lineage"]["checks"],
                "artifact_uri": body["artifact_uri"],
            },
        )
        version = await self._registry.register(
            name=request.model, body=body | {"run": run.registered_with(report)}
        )
        run.finished(report, version=version["version"])
        log.info(
            "model_registered",
            model=request.model,
            version=version["version"],
            status=version["status"],
            promoted=version["promoted"],
            reason=version["reason"],
            metrics=candidate.metrics,
        )
        return version

    async def _upload(self, request: TrainRequest) -> dict[str, Any] | None:
        """The registry's document of the upload the request evaluates, if it names one."""
        if request.upload_id is None:
            return None
        upload = await self._registry.upload(name=request.model, upload_id=request.upload_id)
        if upload is None:
            raise TrainingError(
                f"model '{request.model}' has no upload {request.upload_id}", field="upload_id"
            )
        return upload

    def _uploaded_files(self, upload: dict[str, Any]) -> tuple[bytes, dict[str, Any] | None]:
        """The uploaded model (its digest checked) and its sample predictions, if any."""
        key = key_of(upload["artifact_uri"])
        onnx = get_verified(self._store, key, upload["sha256"])
        if upload["samples_uri"] is None:
            return onnx, None
        return onnx, orjson.loads(self._store.get(key_of(upload["samples_uri"])))

    async def _champion(self, name: str, candidate: Candidate) -> ChampionResult | None:
        """Evaluate what runs in production on the candidate's holdout, if anything does."""
        target = await self._registry.alias(name=name, alias="production")
        if target is None:
            return None
        try:
            data = await asyncio.to_thread(
                get_verified, self._store, key_of(target.artifact_uri), target.sha256
            )
        except Unavailable:
            raise  # the store away: the request waits for it, not judged without a champion
        except MillraceError as exc:
            log.warning(
                "champion_unavailable", model=name, version=target.version, error=exc.message
            )
            return ChampionResult(
                target.version, None, f"champion v{target.version} unavailable: {exc.message}"
            )
        return await asyncio.to_thread(
            evaluate_champion, target=target, data=data, candidate=candidate
        )

    def _publish_artifacts(
        self,
        *,
        request: TrainRequest,
        project: Project,
        spec: ModelSpec,
        feature_set: FeatureSet,
        candidate: Candidate,
        champion: ChampionResult | None,
        timer: Timings,
        upload: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Upload model.onnx and its card; the registration body that names them."""
        prefix = f"models/{request.model}/{request.request_id}"
        model_key, card_key = f"{prefix}/model.onnx", f"{prefix}/model-card.json"
        with timer("upload"):
            self._store.put(model_key, candidate.onnx)
        lock = lineage.find_lock_file(start=project.root, explicit=self._lock_file)
        record = lineage.collect(
            project=project, feature_set=feature_set, spec=spec, request=request, lock_file=lock
        )
        if upload is not None:
            # the model is the uploaded file: the spec's estimator never ran
            internal = {"artifact_uri", "samples_uri"}  # the registry's keys, not the user's
            record["upload"] = {k: v for k, v in upload.items() if k not in internal}
            record["model_spec"] = record["model_spec"] | {"estimator": None, "params": {}}
        body = registration(
            request=request,
            spec=spec,
            candidate=candidate,
            champion=champion,
            lineage_record=record,
            artifact_uri=self._store.uri(model_key),
            card_uri=self._store.uri(card_key),
            timings=timer.seconds,
        )
        self._store.put(
            card_key,
            orjson.dumps(model_card(request=request, body=body), option=orjson.OPT_INDENT_2),
            content_type="application/json",
        )
        return body


def _check_snapshot(request: TrainRequest, feature_set: FeatureSet) -> None:
    snapshot = request.snapshot
    if (snapshot.feature_set, snapshot.feature_set_version) != (
        feature_set.name,
        feature_set.version,
    ):
        raise TrainingError(
            f"snapshot holds {snapshot.feature_set} v{snapshot.feature_set_version}, the "
            f"model needs {feature_set.name} v{feature_set.version}",
            field="snapshot",
        )


def registration(
    *,
    request: TrainRequest,
    spec: ModelSpec,
    candidate: Candidate,
    champion: ChampionResult | None,
    lineage_record: dict[str, Any],
    artifact_uri: str,
    card_uri: str,
    timings: dict[str, float],
) -> dict[str, Any]:
    """What the registry is told: the artifact, its checks, metrics and full lineage."""
    status, reason = _status(spec, candidate)
    champion_metrics = champion.metrics if champion else None
    record = lineage_record | {
        "snapshot": lineage_record["snapshot"] | candidate.data,
        "params": candidate.params,
        "metrics": candidate.metrics,
        "baseline": candidate.baseline,
        "champion": None
        if champion is None
        else {"version": champion.version, "metrics": champion.metrics, "note": champion.note},
        "checks": {
            "passed": candidate.checks.passed,
            "failures": candidate.checks.failures,
            **candidate.checks.details,
        },
        "timings": timings | candidate.timings,
        "artifacts": {
            "model_uri": artifact_uri,
            "sha256": sha256_hex(candidate.onnx),
            "size": len(candidate.onnx),
            "model_card_uri": card_uri,
        },
    }
    return {
        "request_id": request.request_id,
        "artifact_uri": artifact_uri,
        "sha256": sha256_hex(candidate.onnx),
        "size": len(candidate.onnx),
        "schema": candidate.schema.model_dump(mode="json", by_alias=True),
        "metrics": candidate.metrics,
        "champion_metrics": champion_metrics,
        "champion_version": champion.version if champion else None,
        "params": candidate.params,
        "lineage": record,
        "status": status,
        "rejection_reason": reason,
        "promotion": {
            "metric": spec.metric,
            "direction": spec.direction,
            "margin": spec.promotion_margin,
            "baseline": candidate.baseline,
        },
        "description": _description(spec, lineage_record.get("upload")),
        "actor": "trainer",
    }


def _description(spec: ModelSpec, upload: dict[str, Any] | None) -> str:
    made = f"{spec.task} on feature set {spec.feature_set}"
    if upload is None:
        return made
    return upload["description"] or f"{made}, uploaded as {upload['filename']}"


def _status(spec: ModelSpec, candidate: Candidate) -> tuple[str, str | None]:
    if not candidate.checks.passed:
        return "rejected", candidate.checks.reason
    if spec.metric not in candidate.metrics:
        return "rejected", f"metric '{spec.metric}' is undefined on this holdout"
    return "ready", None


def model_card(*, request: TrainRequest, body: dict[str, Any]) -> dict[str, Any]:
    """A human-readable summary stored beside the model (the registry holds the rest)."""
    record = body["lineage"]
    return {
        "model": request.model,
        "request_id": request.request_id,
        "status": body["status"],
        "rejection_reason": body["rejection_reason"],
        "created_at": datetime.now(UTC).isoformat(),
        "artifact_uri": body["artifact_uri"],
        "sha256": body["sha256"],
        "schema": body["schema"],
        "metrics": body["metrics"],
        "champion": record["champion"],
        "promotion_rule": body["promotion"],
        "params": body["params"],
        "lineage": record,
    }
