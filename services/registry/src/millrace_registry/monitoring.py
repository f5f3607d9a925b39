"""The monitor's use cases: store what was served and the labels that came later, report
a model's live quality, and act on it, each decision audited with the numbers that made
it: production goes back to its predecessor when it does worse live by the spec's margin
(``monitoring.rollback``); features is asked for a model when production's live quality
falls under a threshold (``retrain.on_quality``); a canary ramps, takes production or is
stopped by how its live loss compares with production's on the same time
(``monitoring.canary``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from millrace_common.db import transaction
from millrace_common.distribution import psi_by_feature
from millrace_common.errors import Conflict, NotFound, Unavailable
from millrace_common.project import (
    CanaryPolicy,
    MonitoringSpec,
    Project,
    QualityPolicy,
    RetrainPolicy,
    RollbackPolicy,
)
from millrace_common.quality import LOWER_IS_BETTER
from prometheus_client import Gauge
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import monitor_store as store
from millrace_registry.adapters import repository as repo
from millrace_registry.adapters.rows import utc
from millrace_registry.lifecycle import Lifecycle
from millrace_registry.live_quality import (
    Comparison,
    Join,
    LabelCounts,
    WindowQuality,
    compare,
    join,
    overall,
    totals,
    windows,
)
from millrace_registry.names import PRODUCTION
from millrace_registry.references import References
from millrace_registry.schemas import TrafficMode, TrafficPolicy
from millrace_registry.traffic import TrafficPolicies

log = structlog.get_logger(__name__)
MONITOR = "monitor"
"""The actor of the monitor's decisions in the audit log."""
ROLLBACK = "rollback: "
"""How the reason of the monitor's rollback begins (the audit log tells it apart)."""

LIVE_QUALITY = Gauge(
    "millrace_monitor_live_quality",
    "Live quality over the last window, from labelled predictions",
    ["model", "version", "alias", "site", "metric"],
)
LABELLED = Gauge(
    "millrace_monitor_labelled_predictions",
    "Predictions of the last window, and how many of them have a label",
    ["model", "version", "alias", "site", "kind"],
)
SERVED_PSI = Gauge(
    "millrace_monitor_served_psi",
    "PSI of the inputs served over the last window against the version's training snapshot",
    ["model", "version", "feature"],
)
LABELS = Gauge(
    "millrace_monitor_labels",
    "Labels of the last window by outcome (matched, unmatched, late, duplicate)",
    ["model", "outcome"],
)


@dataclass(frozen=True)
class Policy:
    """What the monitor knows of a model: from the project's spec, else defaults (labels by
    request id only)."""

    task: str = "classification"
    dataset: str | None = None
    field: str | None = None
    metric: str = "f1"
    direction: str = "maximize"
    monitoring: MonitoringSpec = dataclasses.field(default_factory=MonitoringSpec)
    retrain: RetrainPolicy = dataclasses.field(default_factory=RetrainPolicy)

    def worse(self, value: float, than: float) -> float:
        """How much worse ``value`` is than ``than`` on the model's metric (negative:
        better)."""
        lower = self.metric in LOWER_IS_BETTER or self.direction == "minimize"
        return value - than if lower else than - value

    @property
    def horizon(self) -> float:
        return float(self.monitoring.label_horizon_seconds)

    @property
    def window(self) -> float:
        return float(self.monitoring.window_seconds)


@dataclass(frozen=True)
class Report:
    model: str
    policy: Policy
    since: datetime
    until: datetime
    window: float
    labels: LabelCounts
    windows: list[WindowQuality]
    overall: list[WindowQuality]
    """One entry per (version, alias, site) over the whole range."""
    comparisons: dict[str, Comparison]
    """Each other alias's labelled predictions (a canary, a shadow) against production's
    over the range."""
    drift: dict[int, dict[str, float]]
    """Each version's PSI per feature: the inputs it answered in the range against the
    snapshot it was trained on, highest first."""


@dataclass(frozen=True)
class Tenure:
    version: int
    since: datetime
    until: datetime
    rolled_back: bool = False
    """It began with the monitor's rollback."""


class Monitoring:
    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        lifecycle: Lifecycle,
        traffic: TrafficPolicies,
        project: Callable[[], Project | None],
        ask_retrain: Callable[..., str] | None = None,
        references: References | None = None,
    ) -> None:
        self._factory = factory
        self._lifecycle = lifecycle
        self._traffic = traffic
        self._project = project
        self._ask_retrain = ask_retrain
        self._references = references

    # -- intake ----------------------------------------------------------------------

    def record(
        self, *, predictions: Sequence[dict[str, Any]], labels: Sequence[dict[str, Any]]
    ) -> int:
        """Store a batch in one transaction (rows already stored are skipped); returns how
        many labels were new."""
        with transaction(self._factory) as session:
            if predictions:
                store.add_predictions(session, predictions)
            return store.add_labels(session, labels) if labels else 0

    def purge(self, *, before: datetime) -> None:
        """Forget what was served and observed before ``before`` (the retention)."""
        with transaction(self._factory) as session:
            served, labels = store.purge(session, before=before)
        if served or labels:
            log.info("monitor_purged", predictions=served, labels=labels, before=before.isoformat())

    # -- reading ---------------------------------------------------------------------

    def policy(self, name: str) -> Policy:
        project = self._project()
        spec = project.models.get(name) if project is not None else None
        if spec is None or project is None:
            return Policy()
        feature_set = project.feature_sets.get(spec.feature_set)
        return Policy(
            task=spec.task,
            dataset=feature_set.dataset if feature_set is not None else None,
            field=feature_set.label if feature_set is not None else None,
            metric=spec.metric,
            direction=spec.direction,
            monitoring=spec.monitoring,
            retrain=spec.retrain,
        )

    def report(
        self,
        *,
        name: str,
        since: datetime,
        until: datetime,
        window: float | None = None,
    ) -> Report:
        """Live quality of ``name``'s predictions made in [since, until)."""
        with self._factory() as session:
            if repo.get_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
        policy = self.policy(name)
        window = window or policy.window
        joined = self._join(name, policy, since=since, until=until)
        found = windows(joined, task=policy.task, window=window)
        counts = joined.counts
        counts.late = sum(w.late_labels for w in found)
        with self._factory() as session:
            counts.duplicate += store.duplicates(session, dataset=policy.dataset)
        return Report(
            model=name,
            policy=policy,
            since=since,
            until=until,
            window=window,
            labels=counts,
            windows=found,
            overall=totals(joined, task=policy.task, since=since, until=until),
            comparisons=_comparisons(policy.task, joined),
            drift=self._drift(name, joined),
        )

    def _drift(self, name: str, joined: Join) -> dict[int, dict[str, float]]:
        if self._references is None:
            return {}
        by_version: dict[int, list[list[float | None]]] = {}
        for served in [i.served for i in joined.labelled] + joined.unlabelled:
            if served.inputs is not None:
                by_version.setdefault(served.version, []).append(served.inputs)
        found = {}
        for version, rows in sorted(by_version.items()):
            features, reference = self._references.of(name, version)
            if reference is None:
                continue
            named = [dict(zip(features, row, strict=False)) for row in rows]
            found[version] = psi_by_feature(reference, named)
        return found

    def joined(self, name: str, *, since: datetime, until: datetime) -> Join:
        """The predictions made in [since, until), each with the label it got."""
        return self._join(name, self.policy(name), since=since, until=until)

    def _join(self, name: str, policy: Policy, *, since: datetime, until: datetime) -> Join:
        with self._factory() as session:
            served = store.served(session, model=name, since=since, until=until)
            truths = store.truths(
                session,
                dataset=policy.dataset,
                field=policy.field,
                since=since,
                until=until,
                horizon=policy.horizon,
            )
        if policy.dataset is None:
            # a model the project does not declare: a label is its own only if it names
            # one of its requests (another model's labels are not its unmatched ones)
            asked = {s.request_id for s in served}
            truths = [t for t in truths if t.request_id in asked]
        return join(served, truths, horizon=policy.horizon)

    # -- decisions -------------------------------------------------------------------

    def check(self, *, now: datetime | None = None) -> list[str]:
        """Export every model's last window to Prometheus and apply rollback policies;
        returns the decisions taken, as their audited reasons."""
        now = now or datetime.now(UTC)
        with self._factory() as session:
            names = [row["name"] for row in repo.list_models(session)]
        decisions = []
        for name in names:
            policy = self.policy(name)
            self._export(name, policy, now=now)
            if policy.monitoring.rollback is not None:
                decided = self._check_rollback(name, policy, policy.monitoring.rollback, now=now)
                if decided:
                    decisions.append(decided)
            if policy.retrain.on_quality is not None:
                decided = self._check_quality(name, policy, policy.retrain.on_quality, now=now)
                if decided:
                    decisions.append(decided)
            if policy.monitoring.canary is not None:
                decided = self._check_canary(name, policy, policy.monitoring.canary, now=now)
                if decided:
                    decisions.append(decided)
        return decisions

    def _check_quality(
        self, name: str, policy: Policy, rule: QualityPolicy, *, now: datetime
    ) -> str | None:
        """Ask features for a new model when production's live metric over the last
        window is worse than the threshold; audited, and not again within the cooldown."""
        if self._ask_retrain is None:
            return None
        with self._factory() as session:
            production = repo.alias_version(session, name=name, alias=PRODUCTION)
            entries = repo.list_audit(session, name=name, limit=200)
        if production is None:
            return None
        cooldown = max(policy.window, float(policy.retrain.at_most_every_seconds))
        for entry in entries:
            at = utc(entry["at"])
            if entry["action"] == "retrain_requested" and (now - at).total_seconds() < cooldown:
                return None
        since = now - timedelta(seconds=policy.window)
        found = self._quality(name, policy, Tenure(production, since, now))
        if found is None:
            return None
        value, n = found
        if n < rule.min_labelled or policy.worse(value, than=rule.threshold) <= 0:
            return None
        evidence = (
            f"live {policy.metric} {value:.4f} of production v{production} on {n} labelled "
            f"predictions in the last {policy.monitoring.window} is worse than the threshold "
            f"{rule.threshold:g} (retrain.on_quality)"
        )
        try:
            request_id = self._ask_retrain(
                name, reason=f"quality: {evidence}", requested_by=MONITOR
            )
        except Unavailable as exc:
            log.warning("retrain_not_asked", model=name, error=exc.message)
            return None
        reason = f"monitor: {evidence}; train request {request_id}"
        with transaction(self._factory) as session:
            repo.add_audit(
                session, model=name, action="retrain_requested", actor=MONITOR, reason=reason
            )
        log.info("retrain_requested", model=name, request_id=request_id, reason=reason)
        return reason

    def _check_canary(
        self, name: str, policy: Policy, rule: CanaryPolicy, *, now: datetime
    ) -> str | None:
        """One step of the canary in force: stop it, ramp it, promote it, or wait."""
        traffic = self._traffic.get(name=name)
        if traffic.mode != "canary" or traffic.updated_at is None or traffic.percent is None:
            return None
        challenger = traffic.challenger_version
        with self._factory() as session:
            production = repo.alias_version(session, name=name, alias=PRODUCTION)
        if challenger is None or production is None or challenger == production:
            return None
        since = utc(traffic.updated_at)
        joined = self._join(name, policy, since=since, until=now)
        sides = {
            side: [i for i in joined.labelled if (i.served.alias, i.served.version) == key]
            for side, key in (
                ("challenger", (traffic.challenger_alias, challenger)),
                ("production", (PRODUCTION, production)),
            )
        }
        found = compare(policy.task, sides["challenger"], sides["production"])
        if found is None or min(found.challenger, found.production) < rule.min_labelled:
            return None
        evidence = (
            f"canary v{challenger} at {traffic.percent:g}%: loss {found.challenger_loss:.4f} on "
            f"{found.challenger} labelled predictions against production v{production}'s "
            f"{found.production_loss:.4f} on {found.production} since "
            f"{since:%Y-%m-%d %H:%M:%S} UTC (z {found.z:.2f}, worse with confidence "
            f"{found.p_worse:.3f}; the bar is {rule.confidence:g})"
        )
        if found.p_worse >= rule.confidence:
            reason = f"monitor: stopped: {evidence}"
            self._set_traffic(name, "none", traffic.challenger_alias, None, reason)
            log.warning("canary_stopped", model=name, version=challenger, reason=reason)
            return reason
        later = [step for step in rule.steps if step > traffic.percent]
        if later:
            reason = f"monitor: ramped to {later[0]:g}%: {evidence}"
            self._set_traffic(name, "canary", traffic.challenger_alias, later[0], reason)
            log.info("canary_ramped", model=name, version=challenger, percent=later[0])
            return reason
        reason = f"monitor: canary passed every step: {evidence}"
        self._lifecycle.move_alias(
            name=name, alias=PRODUCTION, version=challenger, reason=reason, actor=MONITOR
        )
        self._set_traffic(name, "none", traffic.challenger_alias, None, reason)
        log.info("canary_promoted", model=name, version=challenger)
        return reason

    def _set_traffic(
        self, name: str, mode: TrafficMode, alias: str, percent: float | None, reason: str
    ) -> None:
        policy = TrafficPolicy(
            mode=mode,
            challenger_alias=alias,
            percent=percent,
            reason=reason[:2000],
            actor=MONITOR,
        )
        self._traffic.set(name=name, policy=policy)

    def _export(self, name: str, policy: Policy, *, now: datetime) -> None:
        since = now - timedelta(seconds=policy.window)
        report = self.report(name=name, since=since, until=now)
        for entry in report.overall:
            labels = (name, str(entry.version), entry.alias or "", entry.site or "")
            LABELLED.labels(*labels, "predictions").set(entry.predictions)
            LABELLED.labels(*labels, "labelled").set(entry.labelled)
            for metric, value in entry.metrics.items():
                LIVE_QUALITY.labels(*labels, metric).set(value)
        for outcome in ("matched", "unmatched", "late", "duplicate"):
            LABELS.labels(name, outcome).set(getattr(report.labels, outcome))
        for version, found in report.drift.items():
            for feature, value in found.items():
                SERVED_PSI.labels(name, str(version), feature).set(value)

    def _check_rollback(
        self, name: str, policy: Policy, rule: RollbackPolicy, *, now: datetime
    ) -> str | None:
        """Roll production back when its live ``metric`` since it went to production is
        worse than its predecessor's over the predecessor's last time in production."""
        tenures = self._tenures(name, now=now)
        if len(tenures) < 2:
            return None
        current, previous = tenures[0], tenures[1]
        if current.rolled_back or current.version == previous.version:
            return None  # the monitor's own rollback: not judged again (no ping-pong)
        mine = self._quality(name, policy, current)
        theirs = self._quality(name, policy, previous)
        if mine is None or theirs is None:
            return None
        (value, n), (before, m) = mine, theirs
        if n < rule.min_labelled or m < rule.min_labelled:
            return None
        worse_by = policy.worse(value, than=before)
        if worse_by <= rule.margin:
            return None
        reason = (
            f"monitor: live {policy.metric} {value:.4f} of v{current.version} on {n} labelled "
            f"predictions since {current.since:%Y-%m-%d %H:%M:%S} UTC is worse than "
            f"v{previous.version}'s {before:.4f} on {m} by {worse_by:.4f}, more than the "
            f"margin {rule.margin:g}"
        )
        try:
            self._lifecycle.move_alias(
                name=name,
                alias=PRODUCTION,
                version=previous.version,
                reason=f"{ROLLBACK}{reason}",
                actor=MONITOR,
            )
        except (Conflict, NotFound) as exc:
            log.warning("rollback_refused", model=name, version=previous.version, error=str(exc))
            return None
        log.warning("rolled_back", model=name, version=previous.version, reason=reason)
        return f"{ROLLBACK}{reason}"

    def _quality(self, name: str, policy: Policy, tenure: Tenure) -> tuple[float, int] | None:
        joined = self._join(name, policy, since=tenure.since, until=tenure.until)
        labelled = [
            item
            for item in joined.labelled
            if item.served.version == tenure.version and item.served.alias == PRODUCTION
        ]
        value = overall(policy.task, Join(labelled, [], joined.counts)).get(policy.metric)
        return None if value is None else (value, len(labelled))

    def _tenures(self, name: str, *, now: datetime) -> list[Tenure]:
        """Production's versions, newest first, each with when it held production."""
        with self._factory() as session:
            entries = repo.list_audit(session, name=name, limit=1000)
        tenures: list[Tenure] = []
        until = now
        for entry in entries:
            if entry["alias"] != PRODUCTION or entry["to_version"] is None:
                continue
            since = utc(entry["at"])
            rolled_back = entry["actor"] == MONITOR and entry["reason"].startswith(ROLLBACK)
            tenures.append(Tenure(entry["to_version"], since, until, rolled_back))
            until = since
            if len(tenures) == 2:
                break
        return tenures


def _comparisons(task: str, joined: Join) -> dict[str, Comparison]:
    """Every alias but production against production, over the same range."""
    by_alias: dict[str, list[Any]] = {}
    for item in joined.labelled:
        by_alias.setdefault(item.served.alias or "", []).append(item)
    production = by_alias.get(PRODUCTION, [])
    found = {}
    for alias, items in by_alias.items():
        if alias and alias != PRODUCTION:
            compared = compare(task, items, production)
            if compared is not None:
                found[alias] = compared
    return found
