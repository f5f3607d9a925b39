"""``millrace.Client``: the platform from a notebook or a script. Records in, training
frames out (point in time), runs recorded with their params, metrics and files, models
uploaded, promoted and asked for predictions, each through the services' REST APIs
(the same calls the ``millrace`` command makes).

Every failure is a ``millrace.Error`` whose message is one line naming what was wrong
(the service's own error message and field, or why it could not be reached)."""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from millrace_cli.client import Service
from millrace_cli.errors import CliError
from millrace_cli.options import USER
from millrace_cli.platform import DEFAULT_PORTS
from millrace_cli.training import follow
from millrace_cli.uploading import request_evaluation, send_upload

if TYPE_CHECKING:
    import pandas as pd

Doc = dict[str, Any]
Records = Iterable[Mapping[str, Any]]
BATCH = 500


class Error(CliError):
    """What the platform refused, or why it could not be reached, in one line."""


def _local(service: str) -> str:
    return f"http://127.0.0.1:{DEFAULT_PORTS[service]}"


class Client:
    """One platform's services. Each URL is the argument, else ``MILLRACE_<SERVICE>_URL``,
    else the local default of ``millrace up``/``make dev``; the credential is ``token``,
    else ``MILLRACE_TOKEN`` (a key from ``millrace keys create``)."""

    def __init__(
        self,
        *,
        ingest: str | None = None,
        features: str | None = None,
        registry: str | None = None,
        serving: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        token = token if token is not None else os.environ.get("MILLRACE_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def service(name: str, given: str | None) -> Service:
            variable = f"MILLRACE_{name.upper().replace('-', '_')}_URL"
            url = given or os.environ.get(variable) or _local(name)
            return Service(url, timeout=timeout, headers=headers)

        self.ingest = service("ingest", ingest)
        self.features = service("features", features)
        self.registry = service("registry", registry)
        self.serving = service("serving", serving)

    # -- data ---------------------------------------------------------------------------

    def send(self, dataset: str, records: pd.DataFrame | Records, *, batch: int = BATCH) -> int:
        """Records of ``dataset`` into the platform (validated by ingest, which names the
        first bad record's field and sends nothing of its batch); how many were accepted.
        A DataFrame's rows are records; timestamps travel as ISO 8601."""
        sent = 0
        for chunk in _chunks(_records(records), batch):
            with _errors():
                answer = self.ingest.post("datasets", dataset, "records", body={"records": chunk})
            sent += int(answer["accepted"])
        return sent

    def training_frame(
        self,
        feature_set: str,
        entities: pd.DataFrame,
        *,
        entity_column: str = "entity_id",
        time_column: str = "at",
    ) -> pd.DataFrame:
        """The feature set's values for each row of ``entities`` as they were known at
        its time (Feast's historical retrieval): one row per entity row, in order, with
        the feature columns, the row's label under the feature set's label name and
        ``event_time`` (the feature row used; NaT where nothing was known yet). The
        frame's ``attrs`` name the ``features`` (in the model's order) and the ``label``."""
        import pandas as pd

        missing = [c for c in (entity_column, time_column) if c not in entities.columns]
        if missing:
            raise Error(f"entities lack the columns {missing}")
        at = pd.to_datetime(entities[time_column], utc=True)
        asked = [
            {"entity_id": str(entity), "at": when.isoformat()}
            for entity, when in zip(entities[entity_column], at, strict=True)
        ]
        rows: list[Doc] = []
        for chunk in _chunks(iter(asked), 50_000):
            with _errors():
                answer = self.features.post(
                    "feature-sets", feature_set, "historical-features", body={"entities": chunk}
                )
            rows.extend(answer["rows"])
        names, label = answer["features"], answer["label"]
        frame = entities.reset_index(drop=True).copy()
        for name in names:
            frame[name] = [None if r["features"] is None else r["features"].get(name) for r in rows]
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
        if label:
            frame[label] = pd.to_numeric(pd.Series([r["label"] for r in rows]), errors="coerce")
        frame["event_time"] = pd.to_datetime([r["event_time"] for r in rows], utc=True)
        frame.attrs.update(feature_set=feature_set, features=names, label=label)
        return frame

    # -- runs ---------------------------------------------------------------------------

    @contextmanager
    def run(
        self, model: str, *, params: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> Iterator[Run]:
        """A run recorded in the registry while the block runs: ``succeeded`` when the
        block ends, ``failed`` with the exception's message when it raises."""
        run = Run(self.registry, model=model, run_id=run_id or f"nb-{uuid.uuid4().hex[:12]}")
        run.params.update(params or {})
        run.report("running")
        try:
            yield run
        except BaseException as exc:
            run.report("failed", reason=f"{type(exc).__name__}: {exc}"[:5000])
            raise
        run.report("succeeded")

    def runs(self, model: str) -> list[Doc]:
        with _errors():
            return self.registry.get("models", model, "runs")  # type: ignore[no-any-return]

    # -- models -------------------------------------------------------------------------

    def upload(
        self,
        model: str,
        path: str | Path,
        *,
        samples: Mapping[str, Any] | str | Path | None = None,
        description: str = "",
        wait: bool = True,
        timeout: float = 900.0,
    ) -> Doc:
        """Upload an ONNX file as a new version of ``model`` and have it evaluated on a
        fresh holdout of its feature set. ``samples`` (``{rows, predictions,
        probabilities?}``, or a JSON file of it) are answers the model gave where it was
        built: the uploaded file must give the same. With ``wait``: the version,
        ``ready`` (then judged against the baseline and production) or ``rejected`` with
        its ``rejection_reason``; without: the upload and its evaluation request."""
        with _errors():
            stored = send_upload(
                self.registry,
                name=model,
                model=Path(path),
                samples=_samples_bytes(samples),
                description=description,
            )
            request = request_evaluation(self.features, name=model, upload=stored)
            if not wait:
                return {"upload": stored, "request": request}
            run = follow(
                self.registry,
                model=model,
                request_id=request["request_id"],
                timeout=timeout,
                spinner=False,
            )
        if run["version"] is None:
            raise Error(f"the evaluation of {Path(path).name} failed: {run['failure_reason']}")
        return self.version(model, run["version"])

    def version(self, model: str, version: int) -> Doc:
        with _errors():
            return self.registry.get("models", model, "versions", version)  # type: ignore[no-any-return]

    def promote(self, model: str, version: int, *, reason: str, alias: str = "production") -> Doc:
        """Point ``alias`` at ``version`` (audited with ``reason``)."""
        body = {"version": version, "reason": reason, "actor": USER}
        with _errors():
            return self.registry.post("models", model, "aliases", alias, body=body)  # type: ignore[no-any-return]

    def wait_served(
        self, model: str, version: int, *, alias: str = "production", timeout: float = 120.0
    ) -> None:
        """Block until serving answers ``alias`` with ``version``: a promotion reaches
        serving as a ``model-published`` event, a moment after the registry answers."""
        deadline = time.monotonic() + timeout
        while True:
            with _errors():
                loaded = self.serving.get("models")
            if any(
                m["name"] == model and m["alias"] == alias and m["version"] == version
                for m in loaded
            ):
                return
            if time.monotonic() > deadline:
                raise Error(
                    f"serving did not load {model} v{version} as {alias!r} in {timeout:g} s"
                )
            time.sleep(0.25)

    def predict(
        self,
        model: str,
        rows: pd.DataFrame | Records | None = None,
        *,
        entity_ids: Sequence[str] | None = None,
        alias: str | None = None,
        version: int | None = None,
    ) -> list[Doc]:
        """Serving's answers, one per row (feature values) or per entity id (its online
        features): ``{"label", "probabilities"}`` or ``{"value"}``, with the version."""
        if (rows is None) == (entity_ids is None):
            raise Error("give rows of feature values or entity_ids, one of the two")
        body: Doc = {"alias": alias, "version": version}
        if rows is not None:
            body["instances"] = list(_records(rows))
        else:
            body["entity_ids"] = list(entity_ids or [])
        with _errors():
            answer = self.serving.post(
                "models", model, "predict", body={k: v for k, v in body.items() if v is not None}
            )
        served = {k: v for k, v in answer.items() if k != "predictions"}
        return [p | {"served_by": served} for p in answer["predictions"]]


@dataclass
class Run:
    """A run being recorded: params, metrics and files, sent as the run ends (files at
    once)."""

    registry: Service
    model: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[Doc] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def log_params(self, **params: Any) -> None:
        self.params.update(params)

    def log_metrics(self, **metrics: float) -> None:
        self.metrics.update({k: float(v) for k, v in metrics.items()})

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> Doc:
        """Keep a file with the run (under ``name``, default the file's name)."""
        source = Path(path)
        url = self.registry.url(
            "models", self.model, "runs", self.run_id, "artifacts", name or source.name
        )
        with _errors():
            if not source.is_file():
                raise Error(f"{source}: no such file")
            stored: Doc = self.registry.request("PUT", url, content=source.read_bytes())
        self.artifacts.append(stored)
        return stored

    def report(self, status: str, *, reason: str | None = None) -> None:
        finished = None if status == "running" else datetime.now(UTC)
        body = {
            "request_id": f"notebook:{self.run_id}",
            "status": status,
            "params": _jsonable(self.params),
            "metrics": self.metrics,
            "failure_reason": reason,
            "details": {"source": "notebook", "user": USER, "artifacts": self.artifacts},
            "started_at": self.started_at.isoformat(),
            "finished_at": None if finished is None else finished.isoformat(),
        }
        if finished is not None:
            body["timings"] = {"run": (finished - self.started_at).total_seconds()}
        with _errors():
            self.registry.put("models", self.model, "runs", self.run_id, body=body)


@contextmanager
def _errors() -> Iterator[None]:
    """The CLI's one-line errors, as the client's own type."""
    try:
        yield
    except Error:
        raise
    except CliError as exc:
        raise Error(str(exc)) from None


def _records(records: pd.DataFrame | Records) -> Iterator[Doc]:
    if hasattr(records, "to_json") and hasattr(records, "columns"):
        # pandas writes timestamps as ISO 8601 and NaN as null, as the API takes them
        yield from json.loads(records.to_json(orient="records", date_format="iso"))
        return
    for record in records:  # type: ignore[union-attr]
        yield {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


def _chunks(items: Iterator[Doc], size: int) -> Iterator[list[Doc]]:
    chunk: list[Doc] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _samples_bytes(samples: Mapping[str, Any] | str | Path | None) -> bytes | None:
    if samples is None:
        return None
    if isinstance(samples, str | Path):
        return Path(samples).read_bytes()
    return json.dumps(_jsonable(dict(samples))).encode()


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values, NaN as null (missing)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
