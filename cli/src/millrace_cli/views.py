"""The services' documents as tables (``Grid``s): what each listing shows a person.
Pure, no I/O; ``--json`` prints the documents themselves."""

from __future__ import annotations

from typing import Any

from millrace_cli.render import Cell, Grid, fmt, metrics_text, styled

SHIFT = 0.1
"""PSI from which a feature shows as shifting (0.2 and over: significant)."""
Doc = dict[str, Any]


def aliases_text(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items())) or "-"


def models_grid(models: list[Doc]) -> Grid:
    grid = Grid(["model", "latest", "aliases"])
    for model in models:
        grid.add(
            model["name"],
            fmt(model.get("latest_version")),
            aliases_text(model.get("aliases") or {}),
        )
    return grid


def model_grid(model: Doc) -> Grid:
    grid = Grid(["field", "value"], title=f"model {model['name']}")
    grid.add("description", model.get("description") or "-")
    grid.add("latest version", fmt(model.get("latest_version")))
    grid.add("aliases", aliases_text(model.get("aliases") or {}))
    tags = model.get("tags") or {}
    grid.add("tags", ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-")
    return grid


def versions_grid(versions: list[Doc]) -> Grid:
    grid = Grid(["version", "status", "aliases", "metrics", "created", "decision"])
    for v in versions:
        grid.add(
            str(v["version"]),
            v["status"],
            ", ".join(v["aliases"]) or "-",
            metrics_text(v["metrics"]),
            str(v["created_at"])[:19],
            v.get("rejection_reason") or v["reason"],
        )
    return grid


def audit_grid(entries: list[Doc]) -> Grid:
    grid = Grid(["at", "action", "alias", "from", "to", "actor", "reason"])
    for e in entries:
        grid.add(
            str(e["at"])[:19],
            e["action"],
            e["alias"] or "-",
            version_text(e["from_version"]),
            version_text(e["to_version"]),
            e["actor"] or "-",
            e["reason"] or "-",
        )
    return grid


def monitoring_grid(doc: Doc) -> Grid:
    """Live quality: one row per version, alias and site over the range, then per window."""
    labels = doc["labels"]
    grid = Grid(
        ["version", "alias", "site", "from", "to", "predictions", "labelled", "late", "quality"],
        title=f"{doc['model']}: live quality ({doc['task']}, decisions on {doc['metric']})",
        caption=(
            f"labels: {labels['received']} received, {labels['matched']} matched, "
            f"{labels['unmatched']} unmatched, {labels['duplicate']} duplicate, "
            f"{labels['late']} late"
        ),
    )
    for entry in [*doc["versions"], *doc["windows"]]:
        grid.add(
            version_text(entry["version"]),
            entry["alias"] or "-",
            entry["site"] or "-",
            str(entry["start"])[:19],
            str(entry["end"])[:19],
            str(entry["predictions"]),
            str(entry["labelled"]),
            str(entry["late_labels"]),
            metrics_text(entry["metrics"]) or "-",
        )
    return grid


def version_text(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def lineage_grid(doc: Doc) -> Grid:
    grid = Grid(["what", "value"], title=f"{doc['name']} v{doc['version']} lineage")
    request = doc.get("train_request") or {}
    snapshot = doc.get("snapshot") or {}
    feature_set = doc.get("feature_set") or {}
    spec = doc.get("model_spec") or {}
    env = doc.get("environment") or {}
    grid.add(
        "train request",
        f"{request.get('request_id')} by {request.get('requested_by')} ({request.get('reason')})",
    )
    grid.add(
        "snapshot",
        f"{snapshot.get('uri')} sha256={snapshot.get('sha256')} "
        f"rows={snapshot.get('rows')} cutoff={snapshot.get('cutoff')}",
    )
    grid.add(
        "feature set",
        f"{feature_set.get('name')} v{feature_set.get('version')}: "
        f"{', '.join(feature_set.get('features') or [])}",
    )
    grid.add("model spec", f"{spec.get('estimator')} {spec.get('params')} seed={doc.get('seed')}")
    grid.add("metrics", metrics_text(doc.get("metrics") or {}))
    grid.add("champion", metrics_text(doc.get("champion_metrics") or {}))
    grid.add("artifact", f"{doc['artifact']['uri']} sha256={doc['artifact']['sha256']}")
    grid.add("project", f"{(doc.get('project') or {}).get('git_commit')}")
    grid.add("environment", f"python {env.get('python')} lock={env.get('lock_sha256')}")
    grid.add("decision", doc["decision"]["reason"])
    return grid


def reproduce_grid(report: Doc) -> Grid:
    grid = Grid(
        ["metric", "original", "reproduced", "match"],
        title=f"{report['name']} v{report['version']} reproduced",
    )
    for name, m in report["metrics"].items():
        grid.add(name, fmt(m["original"]), fmt(m["reproduced"]), match_text(m["match"]))
    onnx = report["onnx"]
    diff = onnx.get("max_probability_diff", onnx.get("max_relative_diff"))
    grid.add(
        "onnx outputs",
        f"{onnx['holdout_rows']} holdout rows",
        f"max diff {fmt(diff)} / tol {onnx['tolerance']:.0e}",
        match_text(onnx["match"]),
    )
    for m in report["environment"]["mismatches"]:
        grid.add(f"env {m['what']}", fmt(m["recorded"]), fmt(m["now"]), styled("differs", "yellow"))
    return grid


def match_text(match: bool) -> Cell:
    return "yes" if match else styled("NO", "red")


def runs_grid(runs: list[Doc]) -> Grid:
    grid = Grid(["run", "request", "status", "version", "metrics", "timings", "reason"])
    for r in runs:
        timings = " ".join(f"{k}={v:.2f}s" for k, v in r["timings"].items()) or "-"
        grid.add(
            r["run_id"],
            r["request_id"],
            r["status"],
            fmt(r["version"]),
            metrics_text(r["metrics"]),
            timings,
            r["failure_reason"] or "-",
        )
    return grid


def compare_grid(doc: Doc) -> Grid:
    runs = doc["runs"]
    grid = Grid(["", *(r["run_id"] for r in runs)], title=f"runs of {doc['name']}")
    grid.add("status", *(r["status"] for r in runs))
    grid.add("version", *(fmt(r["version"]) for r in runs))
    for part in ("params", "metrics", "timings"):
        for key, values in doc[part].items():
            grid.add(f"{part}.{key}", *(fmt(v) for v in values))
    return grid


def deployments_text(site: Doc) -> str:
    return ", ".join(f"{s['model']}@{s['alias']}" for s in site["status"]) or "-"


def in_sync_text(site: Doc) -> Cell:
    if not site["status"]:
        return "-"
    return "yes" if all(s["in_sync"] for s in site["status"]) else styled("no", "yellow")


def last_seen(site: Doc) -> str:
    return str((site.get("reported") or {}).get("received_at") or "never")[:19]


def sites_grid(sites: list[Doc]) -> Grid:
    grid = Grid(["site", "groups", "follows", "in sync", "last seen"])
    for site in sites:
        grid.add(
            site["site_id"],
            ", ".join(site["groups"]) or "-",
            deployments_text(site),
            in_sync_text(site),
            last_seen(site),
        )
    return grid


def site_grid(site: Doc) -> Grid:
    groups = ", ".join(site["groups"]) or "no group"
    grid = Grid(
        ["model", "alias", "via", "should run", "reports", "in sync"],
        title=f"site {site['site_id']} ({groups}; last seen {last_seen(site)})",
    )
    via = {d["model"]: d["via"] for d in site["deployments"]}
    for s in site["status"]:
        grid.add(
            s["model"],
            s["alias"],
            via.get(s["model"], "-"),
            version_text(s["should_run"]),
            version_text(s["reports"]),
            "yes" if s["in_sync"] else styled("no", "yellow"),
        )
    return grid


def drift_grid(found: Doc) -> Grid:
    window, reference = found["window"], found["reference"]
    policy = found["policy"]
    threshold = policy["psi"] if policy else None
    grid = Grid(
        ["feature", "PSI", ""],
        title=f"{found['model']}: {window['rows']} rows of the last {window['length']} "
        f"vs snapshot {reference['snapshot_id']} ({reference['rows']} rows)",
        caption=drift_caption(found, threshold),
    )
    for feature, value in found["psi"].items():
        grid.add(feature, f"{value:.4f}", drift_mark(value, threshold))
    return grid


def drift_mark(value: float, threshold: float | None) -> Cell:
    if threshold is not None and value > threshold:
        return styled("over the policy's threshold", "red")
    if value >= SHIFT:
        return styled("shifting", "yellow")
    return ""


def drift_caption(found: Doc, threshold: float | None) -> str:
    if threshold is None:
        return "no drift policy: measured, never retrains (retrain.drift in millrace.yaml)"
    if found["would_fire"]:
        return f"the policy would retrain now: {found['reason']}"
    return f"policy: PSI over {threshold}; it would not retrain now"
