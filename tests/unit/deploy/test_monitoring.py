"""Prometheus and Grafana in deploy/: every metric an alert or a dashboard names is one the
code defines (with the labels it filters or groups by), every service's /metrics is
scraped, and the dashboards use the datasource Grafana is provisioned with."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
COMPOSE = DEPLOY / "docker-compose.yml"

SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count"),
}
TARGET_LABELS = {"job", "instance", "site"}
"""Labels Prometheus adds to every series of a target (``site``: the edge agents')."""
METRIC = re.compile(r"\bmillrace_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(millrace_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
VARIABLE = re.compile(r"\$(\w+)")
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


@dataclass(frozen=True)
class Metric:
    kind: str
    name: str
    labels: frozenset[str]


def _literal_strings(node: ast.expr | None) -> list[str]:
    if isinstance(node, ast.List | ast.Tuple):
        return [str(e.value) for e in node.elts if isinstance(e, ast.Constant)]
    return []


def _definitions() -> list[Metric]:
    """Every prometheus_client metric created in libs/ and services/, read from the code."""
    found = []
    for path in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in SUFFIXES or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and str(first.value).startswith("millrace_")):
                continue
            keyword = next((k.value for k in node.keywords if k.arg == "labelnames"), None)
            label_node = node.args[2] if len(node.args) > 2 else keyword
            labels = frozenset(_literal_strings(label_node))
            found.append(Metric(node.func.id, str(first.value), labels))
    return found


def _exposed() -> dict[str, frozenset[str]]:
    """Series name → the labels it may carry, as prometheus_client exposes them."""
    series: dict[str, frozenset[str]] = {}
    for metric in _definitions():
        base = metric.name.removesuffix("_total") if metric.kind == "Counter" else metric.name
        for suffix in SUFFIXES[metric.kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[base + suffix] = metric.labels | TARGET_LABELS | extra
    return series


def _alert_rules() -> list[dict]:  # type: ignore[type-arg]
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_panels(board: dict) -> list[dict]:  # type: ignore[type-arg]
    panels = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"{path.name}: {panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in _dashboard_panels(json.loads(path.read_text()))
        for target in panel.get("targets", [])
    ]


def _queries() -> list[tuple[str, str]]:
    alerts = [(f"alert {rule['alert']}", rule["expr"]) for rule in _alert_rules()]
    return alerts + _dashboard_queries()


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_the_catalog_read_from_the_code_matches_the_live_registry() -> None:
    """The AST reading above finds what prometheus_client registers on import (so the
    checks below compare against the real names, labels included)."""
    import millrace_common.dataplane
    import millrace_common.messaging  # noqa: F401
    import millrace_edge_agent.metrics  # noqa: F401
    import millrace_serving.batching
    import millrace_serving.metrics
    import millrace_serving.traffic  # noqa: F401
    import millrace_trainer.metrics  # noqa: F401
    from prometheus_client import REGISTRY

    definitions = {metric.name: metric for metric in _definitions()}
    live = {
        name: collector
        for name, collector in REGISTRY._names_to_collectors.items()
        if name.startswith("millrace_")
    }
    assert len(definitions) > 40
    for name, collector in live.items():
        labels = frozenset(getattr(collector, "_labelnames", ()))
        metric_name = getattr(collector, "_name", name)
        family = definitions.get(metric_name) or definitions.get(f"{metric_name}_total")
        assert family is not None, f"{metric_name} registered but not found in the code"
        assert family.labels == labels, metric_name


def test_every_metric_in_alerts_and_dashboards_is_defined_in_the_code() -> None:
    exposed = _exposed()
    queries = _queries()
    assert len(queries) > 50
    for where, expr in queries:
        names = METRIC.findall(expr)
        assert names or "up{" in expr, f"{where}: names no Millrace metric"
        for name in names:
            assert name in exposed, f"{where}: {name} is not a metric the code defines"


def test_labels_in_selectors_and_groupings_are_the_metrics_own() -> None:
    exposed = _exposed()
    for where, expr in _queries():
        for name, matchers in SELECTOR.findall(expr):
            for label in MATCHER.findall(matchers):
                assert label in exposed[name], f"{where}: {name} has no label {label}"
        carried = set().union(*(exposed[name] for name in METRIC.findall(expr)), TARGET_LABELS)
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in carried, f"{where}: groups by {label}, which no series carries"


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    covered = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "up",
        "millrace_predict_requests_total",
        "millrace_predict_latency_seconds_bucket",
        "millrace_serving_swap_failures_total",
        "millrace_features_rejected_total",
        "millrace_edge_queue_depth",
        "millrace_edge_records_dropped_total",
        "millrace_edge_last_sync_timestamp_seconds",
        "millrace_edge_rollbacks_total",
    ):
        assert re.search(rf"\b{metric}\b", covered), f"no alert on {metric}"


def test_prometheus_scrapes_every_service_that_serves_metrics() -> None:
    """Every compose service built from a Millrace Dockerfile that publishes a port (not
    the keys-init job) answers /metrics on it; each is a job of its own, named as the
    compose service."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    services = _compose()["services"]
    built = {
        name: service
        for name, service in services.items()
        if "build" in service and "ports" in service
    }
    assert set(built) == {"ingest", "registry", "serving", "features", "trainer", "edge-agent"}
    for name, service in built.items():
        port = service["ports"][0].split(":")[-1]
        assert service["build"]["args"]["PORT"] == port
        assert jobs[name] == [f"{name}:{port}"], f"{name} is not scraped on :{port}"
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_the_edge_agents_site_label_names_the_compose_site() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "edge-agent")
    command = _compose()["services"]["edge-agent"]["command"]
    assert job["static_configs"][0]["labels"]["site"] == command[command.index("--site") + 1]


def test_prometheus_loads_the_alert_rules_that_compose_mounts() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    prometheus = _compose()["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config_path = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    assert (DEPLOY / mounts[config_path]).resolve() == PROMETHEUS
    for rule_file in config["rule_files"]:
        in_container = str(Path(config_path).parent / rule_file)
        assert (DEPLOY / mounts[in_container]).resolve() == (PROMETHEUS.parent / rule_file)
        assert (PROMETHEUS.parent / rule_file).is_file()


def test_grafana_provisions_the_compose_prometheus_and_the_dashboards() -> None:
    compose = _compose()["services"]
    grafana = compose["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    datasources = []
    for path in (provisioning / "datasources").glob("*.yml"):
        datasources += yaml.safe_load(path.read_text())["datasources"]
    (prometheus,) = datasources
    assert prometheus["type"] == "prometheus"
    port = compose["prometheus"]["ports"][0].split(":")[-1]
    assert prometheus["url"] == f"http://prometheus:{port}"
    (provider,) = yaml.safe_load(next((provisioning / "dashboards").glob("*.yml")).read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    assert (DEPLOY / mounts[folder]).resolve() == GRAFANA / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(folder + "/")
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()


def test_dashboards_are_valid_with_unique_ids_and_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert len(DASHBOARDS) >= 2
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids and len(board["uid"]) <= 40
        uids.add(board["uid"])
        panels = _dashboard_panels(board)
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        variables = {v["name"] for v in board["templating"]["list"]}
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == provisioned["uid"], variable["name"]
        queried = [panel for panel in panels if panel["type"] != "row"]
        assert queried, path.name
        for panel in queried:
            assert panel["datasource"]["uid"] == provisioned["uid"], panel["title"]
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == provisioned["uid"]
                for variable in VARIABLE.findall(target["expr"]):
                    assert variable in variables | BUILTIN_VARIABLES, panel["title"]


def test_the_dashboards_cover_what_an_operator_watches() -> None:
    used = {name for _where, expr in _dashboard_queries() for name in METRIC.findall(expr)}
    for name in (
        "millrace_ingest_records_total",
        "millrace_features_rows_total",
        "millrace_dead_letters_total",
        "millrace_trainer_runs_total",
        "millrace_serving_loaded_version",
        "millrace_serving_swaps_total",
        "millrace_predict_requests_total",
        "millrace_predict_latency_seconds_bucket",
        "millrace_serving_batch_rows_bucket",
        "millrace_serving_swap_failures_total",
        "millrace_edge_queue_depth",
        "millrace_edge_records_dropped_total",
        "millrace_edge_records_forwarded_total",
        "millrace_edge_rollbacks_total",
    ):
        assert name in used, f"no dashboard shows {name}"
