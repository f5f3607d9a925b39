"""``millrace score``: a model over a file of rows, in chunks, into Parquet or CSV, through
the scoring core serving uses (``millrace_common.scoring``: the same load and warm-up,
the same checks of every feature, the same answers). Columnar all the way (pyarrow
batches in, numpy to onnxruntime, pyarrow batches out): no row becomes a dict. Each
output row is the input row, the model's answer (``label`` and ``probability_<i>`` per
class, or ``value``), and ``model``, ``model_version`` and ``run_id``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from millrace_cli.client import Service
from millrace_cli.errors import CliError
from millrace_cli.options import FEATURES, REGISTRY, FeaturesOpt, JsonOpt, RegistryOpt
from millrace_cli.render import err, print_json, say

CHUNK = 10_000
SOURCES = (".parquet", ".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson")
SINKS = (".parquet", ".csv")


@dataclass(frozen=True)
class Scored:
    rows: int
    seconds: float
    run_id: str


def batches(path: Path, *, chunk: int) -> Iterator[Any]:
    """The file's rows as pyarrow record batches of at most ``chunk`` rows."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            yield from pq.ParquetFile(path).iter_batches(batch_size=chunk)
        elif name.endswith((".csv", ".csv.gz")):
            options = pcsv.ReadOptions(block_size=1 << 22)
            for batch in pcsv.open_csv(path, read_options=options):
                yield from _rechunk(batch, chunk)
        elif name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            for batch in pjson.read_json(path).to_batches(max_chunksize=chunk):
                yield batch
        else:
            raise CliError(f"{path}: score reads {', '.join(SOURCES)}")
    except (pa.ArrowInvalid, OSError) as exc:
        raise CliError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None


def _rechunk(batch: Any, chunk: int) -> Iterator[Any]:
    for start in range(0, batch.num_rows, chunk):
        yield batch.slice(start, chunk)


def score_file(
    model: Any,
    *,
    source: Path,
    sink: Path,
    run_id: str,
    chunk: int = CHUNK,
    progress: Callable[[int], None] = lambda _rows: None,
    lookup: Callable[[Any], dict[str, Any]] | None = None,
) -> Scored:
    """Score every row of ``source`` with ``model`` (a ``LoadedModel``) into ``sink``;
    with ``lookup``, each batch's feature columns come from it (the offline store, point
    in time) and are written beside the input."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from millrace_common.errors import InvalidInput
    from millrace_common.scoring import matrix_from_columns, refuse_unanswered_missing

    if not sink.name.lower().endswith(SINKS):
        raise CliError(f"{sink}: score writes {', '.join(SINKS)}")
    started, done = time.perf_counter(), 0
    with ExitStack() as stack:
        writer: Any = None
        for batch in batches(source, chunk=chunk):
            if lookup is not None:
                for name, values in lookup(batch).items():
                    batch = batch.append_column(name, pa.array(values, type=pa.float64()))
            columns = {name: batch.column(name) for name in batch.schema.names}
            try:
                matrix = matrix_from_columns(model.schema, columns, batch.num_rows)
                outputs = model.run(matrix)
                refuse_unanswered_missing(model.schema.features, matrix, outputs)
            except InvalidInput as exc:
                raise CliError(f"{source}: {_placed(exc, done)}") from None
            out = _with_answers(batch, outputs, model=model, run_id=run_id)
            if writer is None:
                if sink.name.lower().endswith(".parquet"):
                    writer = stack.enter_context(pq.ParquetWriter(sink, out.schema))
                else:
                    writer = stack.enter_context(pcsv.CSVWriter(sink, out.schema))
            writer.write_batch(out)
            done += batch.num_rows
            progress(done)
        if writer is None:
            raise CliError(f"{source} has no rows to score")
    return Scored(rows=done, seconds=time.perf_counter() - started, run_id=run_id)


def _placed(exc: Any, offset: int) -> str:
    """``rows[3].speed`` of a chunk as the row of the file (from 1)."""
    field = exc.field or ""
    if field.startswith("rows["):
        index = int(field[len("rows[") : field.index("]")])
        return f"row {offset + index + 1}: {exc.message}"
    return str(exc.message)


def _with_answers(batch: Any, outputs: list[Any], *, model: Any, run_id: str) -> Any:
    """The batch, then the model's answer, then which model and run gave it."""
    import numpy as np
    import pyarrow as pa

    rows = batch.num_rows
    arrays, names = list(batch.columns), list(batch.schema.names)
    if model.schema.task == "regression":
        arrays.append(pa.array(np.asarray(outputs[0], dtype=np.float64).reshape(rows)))
        names.append("value")
    else:
        arrays.append(pa.array(np.asarray(outputs[0]).reshape(rows)))
        names.append("label")
        if len(outputs) > 1:
            proba = np.asarray(outputs[1], dtype=np.float64).reshape(rows, -1)
            for k in range(proba.shape[1]):
                arrays.append(pa.array(proba[:, k]))
                names.append(f"probability_{k}")
    arrays += [
        pa.array([model.name] * rows),
        pa.array(np.full(rows, model.version, dtype=np.int64)),
        pa.array([run_id] * rows),
    ]
    names += ["model", "model_version", "run_id"]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def point_in_time(
    features: Service, *, feature_set: str, names: list[str], entity: str, time_column: str
) -> Callable[[Any], dict[str, Any]]:
    """A batch's feature values as they were known at each row's time, from the features
    service (``POST /v1/feature-sets/{name}/historical-features``): null where nothing
    was known yet."""

    def lookup(batch: Any) -> dict[str, Any]:
        for column in (entity, time_column):
            if column not in batch.schema.names:
                raise CliError(f"the rows have no column '{column}' to look features up by")
        entities = batch.column(entity).to_pylist()
        times = batch.column(time_column).to_pylist()
        asked = [
            {"entity_id": str(e), "at": t.isoformat() if hasattr(t, "isoformat") else str(t)}
            for e, t in zip(entities, times, strict=True)
        ]
        found = features.post(
            "feature-sets", feature_set, "historical-features", body={"entities": asked}
        )["rows"]
        return {
            name: [None if row["features"] is None else row["features"].get(name) for row in found]
            for name in names
        }

    return lookup


def fetch_model(registry: Service, *, name: str, alias: str | None, version: int | None) -> Any:
    """The version (or the one ``alias`` points at) loaded by the scoring core, from the
    registry's own copy, its sha256 checked."""
    from millrace_common.contracts import ModelSchema
    from millrace_common.errors import IntegrityError
    from millrace_common.scoring import load_model

    if version is None:
        version = int(registry.get("models", name, "aliases", alias or "production")["version"])
    doc = registry.get("models", name, "versions", version)
    url = registry.url("models", name, "versions", version, "artifact")
    data = registry.request("GET", url, raw=True)
    try:
        return load_model(
            name=name,
            version=version,
            data=data,
            sha256=doc["sha256"],
            schema=ModelSchema.model_validate(doc["schema"]),
        )
    except IntegrityError as exc:
        raise CliError(f"{name} v{version} cannot be loaded: {exc.message}") from None


def score(
    source: Annotated[Path, typer.Argument(help="rows to score: .parquet, .csv or .jsonl (.gz)")],
    model: Annotated[str, typer.Option("--model", help="the registered model")],
    to: Annotated[Path, typer.Option("--to", help="where the scored rows go: .parquet or .csv")],
    alias: Annotated[str | None, typer.Option(help="default production")] = None,
    version: Annotated[int | None, typer.Option(help="a version, instead of an alias")] = None,
    chunk: Annotated[int, typer.Option(help="rows per chunk", min=1, max=1_000_000)] = CHUNK,
    entity_column: Annotated[
        str | None,
        typer.Option(help="look the features up by this column and --time-column instead"),
    ] = None,
    time_column: Annotated[str, typer.Option(help="with --entity-column: when")] = "at",
    registry: RegistryOpt = REGISTRY,
    features_url: FeaturesOpt = FEATURES,
    as_json: JsonOpt = False,
) -> None:
    """Score a file of rows with a registered model, in chunks, through the scoring core
    serving uses; each output row carries the model version and the run id."""
    if alias is not None and version is not None:
        raise CliError("give --alias or --version, not both")
    if not source.is_file():
        raise CliError(f"{source}: no such file")
    registry_api = Service(registry, timeout=300.0)
    loaded = fetch_model(registry_api, name=model, alias=alias, version=version)
    lookup = None
    if entity_column is not None:
        lineage = registry_api.get("models", model, "versions", loaded.version, "lineage")
        feature_set = (lineage.get("feature_set") or {}).get("name")
        if not feature_set:
            raise CliError(f"{model} v{loaded.version} records no feature set to look up")
        lookup = point_in_time(
            Service(features_url, timeout=300.0),
            feature_set=feature_set,
            names=loaded.schema.features,
            entity=entity_column,
            time_column=time_column,
        )
    run_id = f"score-{uuid.uuid4().hex[:12]}"

    def progress(rows: int) -> None:
        if err.is_terminal:
            err.print(f"  {rows} rows scored", end="\r")

    done = score_file(
        loaded,
        source=source,
        sink=to,
        run_id=run_id,
        chunk=chunk,
        progress=progress,
        lookup=lookup,
    )
    summary = {
        "model": model,
        "version": loaded.version,
        "rows": done.rows,
        "seconds": round(done.seconds, 3),
        "run_id": done.run_id,
        "to": str(to),
    }
    if as_json:
        print_json(summary)
        return
    say(
        f"scored {done.rows} rows with {model} v{loaded.version} in {done.seconds:.1f}s "
        f"(run {done.run_id}) → {to}"
    )
