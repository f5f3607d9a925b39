"""Every training attempt is a run, with a JSON log in the object store. It is reported to
the registry when it starts; a run that ends in a version is finished by the registration
itself (one transaction, so no version is ever seen beside a run still ``running``), and a
run that fails is reported failed with the reason."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from millrace_common.objectstore import ObjectStore

from millrace_trainer.adapters.registry_client import RegistryPort

log = structlog.get_logger(__name__)


INTERRUPTED = "interrupted: the trainer stopped during the run"


async def fail_interrupted(*, registry: RegistryPort, models: list[str], trainer: str) -> int:
    """Report failed, as interrupted, the runs ``trainer`` started and never finished (it
    was killed mid-run): called when it starts, before it consumes, so none of them is its
    own. Their requests are redelivered (never committed) and make new runs."""
    failed = 0
    for model in models:
        for run in await registry.running_runs(name=model):
            if run["details"].get("trainer") != trainer:
                continue
            body = {
                "request_id": run["request_id"],
                "started_at": run["started_at"],
                "status": "failed",
                "params": run["params"],
                "failure_reason": INTERRUPTED,
                "details": run["details"],
                "finished_at": datetime.now(UTC).isoformat(),
            }
            await registry.record_run(name=model, run_id=run["run_id"], body=body)
            log.warning("run_interrupted", model=model, run_id=run["run_id"], trainer=trainer)
            failed += 1
    return failed


class Run:
    """One attempt at a train request; reporting is best effort and never fails training."""

    def __init__(
        self,
        *,
        model: str,
        request_id: str,
        store: ObjectStore,
        registry: RegistryPort,
        trainer: str = "",
    ) -> None:
        self.model = model
        self.request_id = request_id
        self.trainer = trainer
        self.run_id = f"run-{uuid.uuid4().hex[:16]}"
        self.started_at = datetime.now(UTC)
        self.steps: list[dict[str, Any]] = []
        self._store = store
        self._registry = registry
        self.log_key = f"runs/{model}/{self.run_id}/run-log.json"

    def note(self, step: str, **details: Any) -> None:
        self.steps.append({"at": datetime.now(UTC).isoformat(), "step": step, **details})

    async def start(self, *, params: dict[str, Any]) -> None:
        self.note("started", request_id=self.request_id)
        await self._report(
            {"status": "running", "params": params, "details": {"trainer": self.trainer}}
        )

    async def conclude(
        self,
        *,
        status: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        timings: dict[str, float] | None = None,
        failure_reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The run's final report, once its JSON log is in the object store (the log is
        written before the version exists, so it names the train request, not the version)."""
        self.note(status, failure_reason=failure_reason)
        report = {
            "status": status,
            "params": params or {},
            "metrics": metrics or {},
            "timings": timings or {},
            "failure_reason": failure_reason,
            "details": details or {},
            "finished_at": datetime.now(UTC).isoformat(),
        }
        logs_uri = await asyncio.to_thread(self._write_log, report)
        return report | {"logs_uri": logs_uri}

    async def fail(self, *, reason: str, params: dict[str, Any], timings: dict[str, float]) -> None:
        """End a run that has no version: reported failed to the registry on its own."""
        report = await self.conclude(
            status="failed", params=params, timings=timings, failure_reason=reason
        )
        await self._report(report)
        self.finished(report)

    def registered_with(self, report: dict[str, Any]) -> dict[str, Any]:
        """The run part of a registration: the registry finishes the run in the transaction
        that adds the version (its status, version and metrics are the version's)."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            **{k: report[k] for k in ("timings", "logs_uri", "details", "finished_at")},
        }

    def finished(self, report: dict[str, Any], *, version: int | None = None) -> None:
        log.info(
            "run_finished",
            model=self.model,
            run_id=self.run_id,
            status=report["status"],
            version=version,
            failure_reason=report["failure_reason"],
        )

    def _write_log(self, report: dict[str, Any]) -> str | None:
        document = {
            "model": self.model,
            "run_id": self.run_id,
            "request_id": self.request_id,
            "started_at": self.started_at.isoformat(),
            "steps": self.steps,
            **report,
        }
        try:
            self._store.put(
                self.log_key,
                orjson.dumps(document, option=orjson.OPT_INDENT_2),
                content_type="application/json",
            )
        except Exception as exc:  # noqa: BLE001 - a lost log must not lose the run
            log.warning("run_log_not_written", run_id=self.run_id, error=repr(exc))
            return None
        return self._store.uri(self.log_key)

    async def _report(self, fields: dict[str, Any]) -> None:
        body = {"request_id": self.request_id, "started_at": self.started_at.isoformat(), **fields}
        try:
            await self._registry.record_run(name=self.model, run_id=self.run_id, body=body)
        except Exception as exc:  # noqa: BLE001 - the registry may be away; training goes on
            log.warning("run_not_reported", run_id=self.run_id, error=repr(exc))
