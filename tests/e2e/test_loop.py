"""The closed loop on the whole platform, as processes: machines report in real time and
apps ask for predictions by machine id; the records' labels come back to the registry's
monitor through ``features``. The world changes (the factory's failures follow a new
rule); the monitor sees live quality fall and asks for a model, which is trained on the
new world (``retrain.lookback``) and reaches production through an automatic canary.
Then the old model is promoted by hand, and the monitor rolls it back once it has the
labelled predictions its policy asks for. No prediction request fails throughout."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from millrace_cli.simulator import LabelRule, factory_records, fails_soon, fails_young, take

from tests.support.features import count_rows
from tests.support.paths import FACTORY
from tests.support.platform import Platform, project_repository, running_platform
from tests.support.waiting import wait_until

MODEL = "machine-failure"
MACHINES = 10


def loop_project(folder: Path) -> Path:
    """The factory, its windows seconds long (readings come every 0.2 s), its model
    watched: retrained when live f1 falls under 0.3, on the last 8 s of labelled rows; a
    new winner goes to half the traffic first; production goes back when it does worse
    live than the version before it."""
    spec = yaml.safe_load((FACTORY / "millrace.yaml").read_text())
    for feature in spec["feature_sets"]["machine_health"]["features"]:
        feature["window"] = "10s"
    spec["models"][MODEL]["retrain"] = {
        "every_n_labelled_rows": None,
        "on_quality": {"threshold": 0.3, "min_labelled": 60},
        "lookback": "8s",
    }
    spec["models"][MODEL]["monitoring"] = {
        "label_horizon": "5s",
        "window": "10s",
        "canary": {"steps": [50], "min_labelled": 40, "confidence": 0.99},
        # wide: the version before a retrained one served the old world too
        "rollback": {"margin": 0.3, "min_labelled": 60},
    }
    return project_repository(folder, spec)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform for the loop's project; the monitor checks and serving reads traffic
    policies every second."""
    project = loop_project(tmp_path_factory.mktemp("project"))
    env = {"MILLRACE_REGISTRY_MONITOR_INTERVAL": "1", "MILLRACE_SERVING_TRAFFIC_INTERVAL": "1"}
    with running_platform(tmp_path_factory.mktemp("loop"), project, env=env) as platform:
        yield platform


@dataclass
class World:
    """The factory, reporting every 0.2 s in real time, under a rule that can change."""

    rule: LabelRule = fails_soon
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, ingest: str) -> None:
        stream = factory_records(
            machines=MACHINES, seed=23, label=lambda: self.rule, clock=lambda: datetime.now(UTC)
        )
        with httpx.Client(base_url=ingest, timeout=30) as client:
            while not self.stop.is_set():
                answer = client.post(
                    "/v1/datasets/machines/records", json={"records": take(stream, MACHINES)}
                )
                if answer.status_code != 202:
                    self.errors.append(answer.text)
                self.sent += MACHINES
                time.sleep(0.2)


@dataclass
class Apps:
    """Apps asking for one machine's prediction at a time, about 20 a second."""

    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, serving: str) -> None:
        rng = random.Random(5)
        with httpx.Client(base_url=serving, timeout=30) as client:
            while not self.stop.is_set():
                machine = f"m-{rng.randrange(MACHINES):03d}"
                answer = client.post(f"/v1/models/{MODEL}/predict", json={"entity_ids": [machine]})
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.versions[answer.json()["version"]] += 1
                else:
                    self.failures.append(answer.text)
                time.sleep(0.05)


@contextlib.contextmanager
def running(target: Any, *args: Any) -> Iterator[None]:
    thread = threading.Thread(target=target.run, args=args, daemon=True)
    thread.start()
    try:
        yield
    finally:
        target.stop.set()
        thread.join(timeout=60)


def production(registry: str) -> int | None:
    answer = httpx.get(f"{registry}/v1/models/{MODEL}/aliases/production", timeout=10)
    return int(answer.json()["version"]) if answer.status_code == 200 else None


def audit(registry: str) -> list[dict[str, Any]]:
    return httpx.get(f"{registry}/v1/models/{MODEL}/audit", timeout=10).json()  # type: ignore[no-any-return]


def test_drift_retrains_through_a_canary_and_a_bad_promotion_is_rolled_back(
    platform: Platform,
) -> None:
    registry, features = platform.url("registry"), platform.url("features")
    world, apps = World(), Apps()
    with running(world, platform.url("ingest")):
        wait_until(
            lambda: count_rows(platform.config.database_url) >= 1500,
            timeout=180,
            what="1,500 feature rows of the first world",
        )
        asked = httpx.post(f"{features}/v1/models/{MODEL}/train-requests", json={}, timeout=60)
        assert asked.status_code == 202, asked.text
        wait_until(lambda: production(registry) == 1, timeout=300, what="v1 in production")
        wait_until(
            lambda: (
                httpx.post(
                    f"{platform.url('serving')}/v1/models/{MODEL}/predict",
                    json={"entity_ids": ["m-000"]},
                    timeout=10,
                ).status_code
                == 200
            ),
            timeout=60,
            what="serving to load v1",  # the registry answers before serving hears of it
        )

        with running(apps, platform.url("serving")):
            wait_until(lambda: apps.versions[1] >= 100, timeout=120, what="v1 answering")
            world.rule = fails_young  # the world changes
            drifted_at = datetime.now(UTC)

            def asked_for_a_model() -> bool:
                return any(e["action"] == "retrain_requested" for e in audit(registry))

            wait_until(asked_for_a_model, timeout=240, what="the monitor asking for a model")

            def new_production() -> int | None:
                version = production(registry)
                return version if version is not None and version > 1 else None

            wait_until(new_production, timeout=420, what="a retrained version in production")
            retrained = new_production()
            assert retrained is not None
            entries = audit(registry)
            assert any(
                e["action"] == "canary_started" and e["to_version"] == retrained for e in entries
            ), entries
            passed = [e for e in entries if e["reason"].startswith("monitor: canary passed")]
            assert passed and passed[0]["to_version"] == retrained, entries

            def labelled_in_production(version: int) -> int:
                report = httpx.get(
                    f"{registry}/v1/models/{MODEL}/monitoring",
                    params={"since": drifted_at.isoformat()},
                    timeout=30,
                ).json()
                return sum(
                    e["labelled"]
                    for e in report["versions"]
                    if e["version"] == version and e["alias"] == "production"
                )

            wait_until(
                lambda: labelled_in_production(retrained) >= 80,
                timeout=180,
                what="labelled predictions of the retrained version in production",
            )
            promoted = httpx.post(
                f"{registry}/v1/models/{MODEL}/aliases/production",
                json={"version": 1, "reason": "hand-picked, wrongly", "actor": "e2e"},
                timeout=30,
            )
            assert promoted.status_code == 200, promoted.text
            wait_until(
                lambda: production(registry) == retrained,
                timeout=240,
                what="the monitor rolling the hand promotion back",
            )
            [rollback] = [
                e
                for e in audit(registry)
                if e["actor"] == "monitor"
                and e["alias"] == "production"
                and e["reason"].startswith("rollback: monitor")
            ]
            assert (rollback["from_version"], rollback["to_version"]) == (1, retrained)
            assert "live f1" in rollback["reason"]
    assert not world.errors, world.errors[:3]
    assert apps.statuses and set(apps.statuses) == {200}, apps.failures[:3]
