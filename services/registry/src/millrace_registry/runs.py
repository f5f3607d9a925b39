"""Training runs: each attempt at a train request, reported when it starts and when it
ends without a version (a run that ends in a version is finished by its registration),
listed and compared side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import structlog
from millrace_common.db import transaction
from millrace_common.errors import Conflict, InvalidInput, NotFound
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import rows
from millrace_registry.adapters.repository import RunColumns
from millrace_registry.names import RUN_RUNNING, RunStatus, check_name
from millrace_registry.schemas import RunComparison, RunReport, RunSummary, TrainingRun
from millrace_registry.search import page

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Runs:
    """Synchronous use cases (the HTTP layer runs them in worker threads)."""

    def __init__(self, *, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def record(self, *, name: str, run_id: str, report: RunReport) -> TrainingRun:
        """A run starting, or ending without a version; a finished run's status is final
        (a late report must not turn a run its registration finished back into another)."""
        check_name(name, field="name")
        check_name(run_id, field="run_id")
        values: RunColumns = {
            "model": name,
            "run_id": run_id,
            "request_id": report.request_id,
            "status": report.status,
            "version": report.version,
            "params": report.params,
            "metrics": report.metrics,
            "timings": report.timings,
            "failure_reason": report.failure_reason,
            "logs_uri": report.logs_uri,
            "details": report.details,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
        }
        with transaction(self._factory) as session:
            repo.lock_model(session, name=name)
            if (
                report.version is not None
                and repo.get_version(session, name=name, version=report.version) is None
            ):
                raise InvalidInput(
                    f"model '{name}' has no version {report.version}", field="version"
                )
            current = repo.get_run(session, name=name, run_id=run_id)
            if current is not None and current["status"] not in (RUN_RUNNING, report.status):
                raise Conflict(
                    f"run '{run_id}' already finished {current['status']}", field="status"
                )
            repo.upsert_run(session, values=values)
        log.info("run_recorded", model=name, run_id=run_id, status=report.status)
        return self.run(name=name, run_id=run_id)

    def run(self, *, name: str, run_id: str) -> TrainingRun:
        with self._factory() as session:
            row = repo.get_run(session, name=name, run_id=run_id)
            if row is None:
                _check_model(session, name)
                raise NotFound(f"model '{name}' has no run '{run_id}'")
            return rows.training_run(row)

    def runs(
        self, *, name: str, status: RunStatus | None, limit: int, offset: int
    ) -> tuple[list[TrainingRun], int]:
        """A model's runs, newest first, and how many there are in all."""
        with self._factory() as session:
            _check_model(session, name)
            found = [
                rows.training_run(r) for r in repo.list_runs(session, name=name, status=status)
            ]
        return page(found, limit=limit, offset=offset)

    def compare(self, *, name: str, run_ids: list[str]) -> RunComparison:
        """Runs side by side: one row per param, metric and timing, one column per run."""
        if len(run_ids) < 2:
            raise InvalidInput("compare needs at least two runs", field="run")
        found = [self.run(name=name, run_id=run_id) for run_id in run_ids]
        return RunComparison(
            name=name,
            runs=[
                RunSummary(
                    run_id=r.run_id,
                    status=r.status,
                    version=r.version,
                    failure_reason=r.failure_reason,
                )
                for r in found
            ],
            params=_side_by_side([r.params for r in found]),
            metrics=_side_by_side([r.metrics for r in found]),
            timings=_side_by_side([r.timings for r in found]),
        )


def run_of_request(session: Session, *, name: str, request_id: str) -> TrainingRun | None:
    """The run that registered a train request's version: the first of the request's
    attempts to end in a version (a later re-send of the request ends in the same one)."""
    found = [r for r in repo.list_runs(session, name=name) if r["request_id"] == request_id]
    ended = [r for r in found if r["version"] is not None] or found
    return rows.training_run(min(ended, key=lambda r: r["id"])) if ended else None


def _side_by_side(parts: Sequence[Mapping[str, T]]) -> dict[str, list[T | None]]:
    keys = sorted({key for part in parts for key in part})
    return {key: [part.get(key) for part in parts] for key in keys}


def _check_model(session: Session, name: str) -> None:
    if repo.get_model(session, name=name) is None:
        raise NotFound(f"no model '{name}'")
