"""deploy/k8s, the scale-out mode: every manifest valid against a recent Kubernetes's
schemas (kubernetes-validate ships them; no cluster, no network), and wired the way the
services read it: selectors, ports, probes, images, shared settings, scaling."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from millrace_features.config import Settings as FeaturesSettings
from millrace_features.metrics import RAW_LAG
from millrace_ingest.config import Settings as IngestSettings
from millrace_registry.config import Settings as RegistrySettings
from millrace_serving.config import Settings as ServingSettings
from millrace_serving.runtime import consumer_group
from millrace_trainer.config import Settings as TrainerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SETTINGS: dict[str, Any] = {
    "ingest": IngestSettings,
    "registry": RegistrySettings,
    "serving": ServingSettings,
    "features": FeaturesSettings,
    "trainer": TrainerSettings,
}
"""Every HTTP service of the centre; the edge agent runs at the sites, not here."""
PLACEHOLDER = "CHANGE-ME"

Doc = dict[str, Any]


def _kustomization() -> Doc:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _documents() -> list[Doc]:
    return [
        doc
        for resource in _kustomization()["resources"]
        for doc in yaml.safe_load_all((K8S / resource).read_text())
        if doc
    ]


def _of_kind(kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in _documents() if doc["kind"] == kind}


def _container(deployment: Doc) -> Doc:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _container_port(container: Doc, port: int | str) -> int:
    """The containerPort a probe, Service or annotation names (by name or number)."""
    for declared in container["ports"]:
        if port in (
            declared.get("name"),
            declared["containerPort"],
            str(declared["containerPort"]),
        ):
            return int(declared["containerPort"])
    raise AssertionError(f"{container['name']} declares no port {port!r}")


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _pod_env(deployment: Doc) -> dict[str, str]:
    """The environment a pod of ``deployment`` starts with."""
    maps, secrets = _of_kind("ConfigMap"), _of_kind("Secret")
    env: dict[str, str] = {}
    container = _container(deployment)
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:  # valueFrom: a key of a Secret
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
    return env


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _memory(quantity: str) -> int:
    units = {"Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_kustomization_applies_every_manifest_in_one_namespace() -> None:
    kustomization = _kustomization()
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    (namespace,) = _of_kind("Namespace")
    assert kustomization["namespace"] == namespace
    for doc in _documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]


def test_every_manifest_is_valid_for_a_recent_kubernetes() -> None:
    version = kubernetes_validate.latest_version()
    assert tuple(int(part) for part in version.split(".")[:2]) >= (1, 30)
    documents = _documents()
    assert len(documents) >= 14
    for doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_refuses_a_misspelt_field() -> None:
    """The check above has teeth: strict validation rejects what a cluster would."""
    deployment = copy.deepcopy(_of_kind("Deployment")["serving"])
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_one_deployment_and_service_per_http_service_on_its_default_port() -> None:
    deployments, services = _of_kind("Deployment"), _of_kind("Service")
    assert set(deployments) == set(services) == set(SETTINGS)
    for name, settings in SETTINGS.items():
        port = settings.model_fields["port"].default
        assert _container_port(_container(deployments[name]), "http") == port
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == port, name


def test_each_deployment_selects_its_own_pods_only() -> None:
    deployments = _of_kind("Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other, candidate in deployments.items():
            labels = candidate["spec"]["template"]["metadata"]["labels"]
            assert _selects(selector, labels) == (other == name), (name, other)


def test_services_route_to_their_deployments_container_port() -> None:
    deployments = _of_kind("Deployment")
    for name, service in _of_kind("Service").items():
        selector = service["spec"]["selector"]
        matched = [
            d
            for d in deployments.values()
            if _selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert [d["metadata"]["name"] for d in matched] == [name]
        for port in service["spec"]["ports"]:
            assert _container_port(_container(matched[0]), port["targetPort"]) == port["port"]


def test_probes_ask_readyz_and_healthz_on_the_container_port() -> None:
    for name, deployment in _of_kind("Deployment").items():
        container = _container(deployment)
        port = _container_port(container, "http")
        expected = {
            "readinessProbe": "/readyz",
            "livenessProbe": "/healthz",
            "startupProbe": "/healthz",
        }
        for probe, path in expected.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert _container_port(container, get["port"]) == port


def test_resources_are_requested_and_limited() -> None:
    for name, deployment in _of_kind("Deployment").items():
        resources = _container(deployment)["resources"]
        requests, limits = resources["requests"], resources["limits"]
        assert 0 < _cpu(requests["cpu"]) <= _cpu(limits["cpu"]), name
        assert 0 < _memory(requests["memory"]) <= _memory(limits["memory"]), name


def test_images_are_the_ones_compose_builds_at_the_services_version() -> None:
    pinned = {image["name"]: image for image in _kustomization()["images"]}
    built = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())["services"]
    for name, deployment in _of_kind("Deployment").items():
        image, tag = _container(deployment)["image"].split(":")
        assert image == f"millrace-{name}"
        assert built[name]["image"] == f"{image}:{tag}"
        assert built[name]["build"]["args"]["SERVICE"] == name
        project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())
        assert tag == project["project"]["version"] == pinned[image]["newTag"]


def test_prometheus_scrapes_every_pod_on_its_metrics_port() -> None:
    for name, deployment in _of_kind("Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        assert _container_port(_container(deployment), port) == port


def test_credentials_live_in_the_secret_as_marked_placeholders() -> None:
    (config,) = _of_kind("ConfigMap").values()
    (secret,) = _of_kind("Secret").values()
    for key in config["data"]:
        assert not any(word in key for word in ("PASSWORD", "SECRET", "KEY", "DATABASE_URL")), key
    assert PLACEHOLDER in config["data"]["MILLRACE_BROKER"]
    assert PLACEHOLDER in config["data"]["MILLRACE_OBJECT_STORE"]
    for key, value in secret["stringData"].items():
        assert value == "" or PLACEHOLDER in value, f"{key} holds a real-looking credential"
    assert {"MILLRACE_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(
        secret["stringData"]
    )


def test_each_service_reads_the_pods_environment_as_intended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pod's environment through the service's own Settings: the shared addresses, the
    registry by its Service name and port, the features state on the mounted volume."""
    deployments = _of_kind("Deployment")
    registry_port = _of_kind("Service")["registry"]["spec"]["ports"][0]["port"]
    for name, settings_class in SETTINGS.items():
        env = _pod_env(deployments[name])
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = settings_class()
        assert settings.broker == env["MILLRACE_BROKER"]
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.object_store.startswith("s3://")
        assert settings.host == "0.0.0.0"
        if hasattr(settings, "registry_url"):
            assert settings.registry_url == f"http://registry:{registry_port}", name
    features = deployments["features"]
    mounts = {m["mountPath"] for m in _container(features)["volumeMounts"]}
    assert _pod_env(features)["MILLRACE_FEATURES_DATA_DIR"] in mounts


def test_serving_scales_out_with_a_budget_and_an_autoscaler() -> None:
    """Each serving pod follows model-published in a group of its own, so any number of
    replicas each see every swap; two at least, one kept through a drain, more on CPU."""
    assert consumer_group() != consumer_group()
    serving = _of_kind("Deployment")["serving"]
    replicas = serving["spec"]["replicas"]
    assert replicas >= 2
    labels = serving["spec"]["template"]["metadata"]["labels"]
    (budget,) = _of_kind("PodDisruptionBudget").values()
    assert _selects(budget["spec"]["selector"]["matchLabels"], labels)
    assert 1 <= budget["spec"]["minAvailable"] < replicas
    autoscaler = _of_kind("HorizontalPodAutoscaler")["serving"]
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "serving")
    assert replicas <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    assert _container(serving)["resources"]["requests"]["cpu"]  # Utilization needs a request


def test_features_and_trainer_replicas_share_one_consumer_group() -> None:
    """No pod gets a group of its own: the replicas split the partitions between them."""
    deployments = _of_kind("Deployment")
    for name, variable in (
        ("features", "MILLRACE_FEATURES_APP_ID"),
        ("trainer", "MILLRACE_TRAINER_GROUP_ID"),
    ):
        assert deployments[name]["spec"]["replicas"] >= 2
        assert variable not in _pod_env(deployments[name])
    partitions = FeaturesSettings.model_fields["partitions"].default
    assert deployments["features"]["spec"]["replicas"] <= partitions
    assert TrainerSettings.model_fields["group_id"].default == "trainer"


def test_features_scales_on_its_lag_up_to_one_worker_per_partition() -> None:
    """The autoscaler reads the lag metric the worker exports, and never asks for more
    workers than raw has partitions."""
    autoscaler = _of_kind("HorizontalPodAutoscaler")["features"]
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "features")
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == RAW_LAG._name
    partitions = FeaturesSettings.model_fields["partitions"].default
    assert 1 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    assert autoscaler["spec"]["maxReplicas"] <= partitions
