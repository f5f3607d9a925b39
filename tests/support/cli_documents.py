"""Documents shaped as the registry and the features service answer them."""

from __future__ import annotations

from typing import Any

LONG_REASON = (
    "not promoted: f1 0.8123 does not beat the champion's 0.8200 by the spec's margin 0.01 "
    "on the same holdout of 1200 rows [holdout cut at 2026-01-01T10:00:00Z]"
)
MODEL: dict[str, Any] = {
    "name": "machine-failure",
    "description": "fails within the hour",
    "created_at": "2026-01-01T00:00:00Z",
    "latest_version": 2,
    "aliases": {"champion": 1, "production": 1},
    "tags": {"team": "[plant]"},
}
VERSIONS: list[dict[str, Any]] = [
    {
        "name": "machine-failure",
        "version": v,
        "status": "ready",
        "rejection_reason": None,
        "request_id": f"req-{v}",
        "metrics": {"f1": 0.8123, "roc_auc": 0.9311},
        "reason": reason,
        "aliases": aliases,
        "created_at": f"2026-01-0{v}T00:00:00.123456Z",
        "tags": {},
    }
    for v, reason, aliases in (
        (1, "first version", ["champion", "production"]),
        (2, LONG_REASON, ["challenger"]),
    )
]
AUDIT: list[dict[str, Any]] = [
    {
        "id": 2,
        "model": "machine-failure",
        "action": "alias_moved",
        "alias": "production",
        "from_version": None,
        "to_version": 1,
        "actor": "ana",
        "reason": "first production model",
        "at": "2026-01-01T00:00:01Z",
    }
]
RUNS: list[dict[str, Any]] = [
    {
        "name": "machine-failure",
        "run_id": "run-abc",
        "request_id": "req-2",
        "status": "succeeded",
        "version": 2,
        "params": {},
        "metrics": {"f1": 0.8123},
        "timings": {"fit": 1.25, "export": 0.5},
        "failure_reason": None,
        "logs_uri": None,
        "details": {},
        "started_at": "2026-01-02T00:00:00Z",
        "finished_at": "2026-01-02T00:00:02Z",
    }
]
SITES: list[dict[str, Any]] = [
    {
        "site_id": "plant-1",
        "manifest_key": "sites/plant-1/manifest.json",
        "groups": ["east"],
        "deployments": [{"model": "machine-failure", "alias": "production", "via": "group:east"}],
        "models": [],
        "reported": None,
        "status": [
            {
                "model": "machine-failure",
                "alias": "production",
                "should_run": 1,
                "reports": None,
                "in_sync": False,
            }
        ],
    }
]
DRIFT: dict[str, Any] = {
    "model": "machine-failure",
    "window": {"rows": 300, "length": "10m"},
    "reference": {"snapshot_id": "snap-1", "rows": 1200},
    "policy": {"psi": 0.2},
    "psi": {"temperature_mean_10m": 5.95, "speed_last": 0.12, "pressure_mean_10m": 0.01},
    "would_fire": False,
    "reason": None,
}
