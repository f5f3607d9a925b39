"""Each version's reference distribution: its features' quantile bins over the snapshot it
was trained on (the one its lineage names), computed as features computes a snapshot's,
once per version and kept."""

from __future__ import annotations

import io
import threading
from typing import Any

import pyarrow.parquet as pq
import structlog
from millrace_common.distribution import reference_of
from millrace_common.objectstore import ObjectStore, key_of
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo

log = structlog.get_logger(__name__)


class References:
    def __init__(self, *, factory: sessionmaker[Session], store: ObjectStore) -> None:
        self._factory = factory
        self._store = store
        self._known: dict[tuple[str, int], tuple[list[str], dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def of(self, model: str, version: int) -> tuple[list[str], dict[str, Any] | None]:
        """The version's feature names and its reference (None: no snapshot to read, as
        for a version registered without one)."""
        with self._lock:
            if (model, version) in self._known:
                return self._known[(model, version)]
        found = self._read(model, version)
        with self._lock:
            self._known[(model, version)] = found
        return found

    def _read(self, model: str, version: int) -> tuple[list[str], dict[str, Any] | None]:
        with self._factory() as session:
            row = repo.get_version(session, name=model, version=version)
        if row is None:
            return [], None
        features = list((row["model_schema"] or {}).get("features") or [])
        uri = ((row["lineage"] or {}).get("snapshot") or {}).get("uri")
        if not uri or not features:
            return features, None
        try:
            table = pq.read_table(io.BytesIO(self._store.get(key_of(uri))))
        except Exception as exc:  # noqa: BLE001 - no reference is no drift, said once
            log.warning("reference_unreadable", model=model, version=version, error=repr(exc))
            return features, None
        present = [name for name in features if name in table.column_names]
        columns = {name: table.column(name).to_pylist() for name in present}
        return features, reference_of(columns)
