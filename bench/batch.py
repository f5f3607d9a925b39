"""Batch scoring (``millrace score``) against a plain onnxruntime loop over the same rows,
chunk size and output, measured side by side in one run, alternating (these machines are
noisy): the scoring core's checks and the output's extra columns are what it costs."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from millrace_cli.batch import score_file
from millrace_common.objectstore import sha256_hex
from millrace_common.scoring import load_model, open_session

from tests.support.models import FACTORY_FEATURES, fit

TITLE = "batch scoring: millrace score vs a plain onnxruntime loop (200,000 rows, chunks of 10,000)"
ROWS, CHUNK, ROUNDS = 200_000, 10_000, 5


def plain_loop(onnx: bytes, source: Path, sink: Path) -> None:
    """What one would write by hand: read a chunk, run it, write inputs and answers."""
    session = open_session(onnx)
    name = session.get_inputs()[0].name
    writer = None
    for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK):
        x = np.column_stack([batch.column(f).to_numpy() for f in FACTORY_FEATURES]).astype(
            np.float32
        )
        label, proba = session.run(None, {name: x})
        out = pa.RecordBatch.from_arrays(
            [*batch.columns, pa.array(label), pa.array(proba[:, 0]), pa.array(proba[:, 1])],
            names=[*batch.schema.names, "label", "probability_0", "probability_1"],
        )
        if writer is None:
            writer = pq.ParquetWriter(sink, out.schema)
        writer.write_batch(out)
    assert writer is not None
    writer.close()


def run() -> list[dict[str, Any]]:
    artifact = fit(seed=7, kind="forest")
    model = load_model(
        name="bench", version=1, data=artifact.data, sha256=sha256_hex(artifact.data),
        schema=artifact.schema,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rows.parquet"
        columns = {f: rng.normal(size=ROWS) for f in FACTORY_FEATURES}
        columns["entity_id"] = np.array([f"m-{i % 500}" for i in range(ROWS)])
        pq.write_table(pa.table(columns), source)
        plain, ours = [], []
        for round_ in range(ROUNDS):
            started = time.perf_counter()
            plain_loop(artifact.data, source, Path(folder) / "plain.parquet")
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            score_file(model, source=source, sink=Path(folder) / "ours.parquet",
                       run_id=f"bench-{round_}", chunk=CHUNK)  # fmt: skip
            ours.append(time.perf_counter() - started)
        same = (
            pq.read_table(Path(folder) / "ours.parquet")
            .column("label")
            .equals(pq.read_table(Path(folder) / "plain.parquet").column("label"))
        )
    plain_rate, our_rate = ROWS / statistics.median(plain), ROWS / statistics.median(ours)
    return [
        {"path": "plain onnxruntime loop", "rows/s (median)": plain_rate, "ratio": 1.0},
        {
            "path": "millrace score (scoring core)",
            "rows/s (median)": our_rate,
            "ratio": our_rate / plain_rate,
            "target": ">= 0.80",
            "same labels": same,
        },
    ]
