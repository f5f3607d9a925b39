"""Files a run keeps beside its params and metrics (a plot, a notebook, a report), recorded
from wherever the run happened (a notebook through ``millrace.Client``): stored under the
registry's own key ``models/<name>/runs/<run_id>/artifacts/<path>``, listed by the run."""

from __future__ import annotations

import hashlib
import re

from millrace_common.errors import InvalidInput, NotFound
from millrace_common.objectstore import ObjectStore
from pydantic import BaseModel

from millrace_registry.runs import Runs

PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


class RunArtifact(BaseModel):
    path: str
    size: int
    sha256: str | None = None
    """Given when it is stored (a listing does not read every file back)."""


class RunArtifacts:
    def __init__(self, store: ObjectStore, *, runs: Runs, max_bytes: int) -> None:
        self._store = store
        self._runs = runs
        self.max_bytes = max_bytes

    def put(self, *, name: str, run_id: str, path: str, data: bytes) -> RunArtifact:
        """Keep ``data`` as the run's artifact ``path`` (a rewrite replaces it)."""
        self._runs.run(name=name, run_id=run_id)  # NotFound unless the run is recorded
        self._store.put(self._key(name, run_id, path), data)
        return RunArtifact(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def get(self, *, name: str, run_id: str, path: str) -> bytes:
        try:
            return self._store.get(self._key(name, run_id, path))
        except NotFound:
            raise NotFound(
                f"run '{run_id}' of '{name}' has no artifact {path}", field="path"
            ) from None

    def list(self, *, name: str, run_id: str) -> list[RunArtifact]:
        self._runs.run(name=name, run_id=run_id)
        prefix = self._key(name, run_id, "")
        return [
            RunArtifact(path=info.key.removeprefix(prefix), size=info.size)
            for info in self._store.list(prefix)
        ]

    @staticmethod
    def _key(name: str, run_id: str, path: str) -> str:
        if path and (len(path) > 300 or not PATH.match(path)):
            raise InvalidInput(
                f"'{path}' is not an artifact path (letters, digits, . _ - and / between "
                "names, at most 300 characters)",
                field="path",
            )
        return f"models/{name}/runs/{run_id}/artifacts/{path}"
