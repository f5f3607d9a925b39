"""features as a process: real broker, Postgres, S3. Bad input goes to the dlq while the
stream keeps flowing; a kill -9 mid-stream loses and doubles nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import yaml
from millrace_cli.main import app as cli_app
from millrace_cli.processes import (
    ProcessSpec,
    Supervisor,
    wait_until,
)
from millrace_cli.simulator import factory_records, take
from millrace_common.contracts import DLQ, TRAIN_REQUESTS
from millrace_common.db import make_engine
from millrace_common.feature_store import offline_rows, online_rows
from millrace_features.adapters.tables import snapshots
from typer.testing import CliRunner

from tests.support.features import count_rows, expected_features, stored_features
from tests.support.kafka import at_least, produce_plain, read_topic, values
from tests.support.paths import FACTORY

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(fresh_broker: str) -> str:
    """A broker of this test's own: the counts below are of everything on ``raw``."""
    return fresh_broker


def _records(count: int, seed: int) -> list[dict]:  # type: ignore[type-arg]
    return [{"dataset": "machines", **r} for r in take(factory_records(seed=seed), count)]


async def _dead_letters(broker: str, want: int) -> list[dict]:  # type: ignore[type-arg]
    found = await read_topic(broker, DLQ, until=at_least(want), what=f"{want} dead letters")
    return values(found)


async def test_bad_messages_go_to_dlq_and_the_rest_flows(
    features: ProcessSpec, broker: str, database_url: str
) -> None:
    marker = f"unknown-{features.name}"
    good = _records(30, seed=1)
    values = (
        [orjson.dumps(r) for r in good[:10]]
        + [b"not json {", orjson.dumps({**good[0], "dataset": marker})]
        + [orjson.dumps(r) for r in good[10:]]
    )
    produce_plain(broker, "raw", values, [b"m"] * len(values))
    wait_until(
        lambda: count_rows(database_url, offline_rows) == 30, timeout=60, what="30 feature rows"
    )
    letters = [x for x in await _dead_letters(broker, 2) if x["consumer"] == "features"]
    reasons = {letter["error"].split(":")[0] for letter in letters}
    assert "not JSON" in reasons and any(marker in x["error"] for x in letters)
    assert any(base64.b64decode(x["original"]) == b"not json {" for x in letters)
    assert count_rows(database_url, online_rows) == len({r["entity_id"] for r in good})


def test_kill_9_mid_stream_loses_and_doubles_nothing(
    features: ProcessSpec, supervisor: Supervisor, broker: str, database_url: str, project_dir: Path
) -> None:
    records = [{**r, "event_id": f"k9-{i}"} for i, r in enumerate(_records(3000, seed=2))]
    produce_plain(
        broker,
        "raw",
        [orjson.dumps(r) for r in records[:1500]],
        [r["entity_id"].encode() for r in records[:1500]],
    )
    wait_until(
        lambda: count_rows(database_url, offline_rows) > 200,
        timeout=60,
        what="the stream to be under way",
    )
    supervisor.kill(features.name)
    produce_plain(
        broker,
        "raw",
        [orjson.dumps(r) for r in records[1500:]],
        [r["entity_id"].encode() for r in records[1500:]],
    )
    supervisor.start(features, timeout=120)
    wait_until(
        lambda: count_rows(database_url, offline_rows) >= 3000,
        timeout=120,
        what="all 3000 feature rows after the restart",
    )
    assert count_rows(database_url, offline_rows) == 3000
    # the restored windows are whole: rows after the restart equal an uninterrupted run's
    assert stored_features(database_url) == expected_features(project_dir, records)


class TestScheduledRetraining:
    """``retrain: {every: 4s}`` and no row count: a snapshot and its train request once
    the interval has passed with new labelled rows, none while nothing new arrives."""

    @pytest.fixture
    def project_dir(self, tmp_path: Path) -> Path:
        spec = yaml.safe_load((FACTORY / "millrace.yaml").read_text())
        spec["models"]["machine-failure"]["retrain"] = {
            "every_n_labelled_rows": None,
            "every": "4s",
        }
        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "millrace.yaml").write_text(yaml.safe_dump(spec))
        return folder

    async def test_a_snapshot_per_interval_only_when_new_labelled_rows_came(
        self, features: ProcessSpec, broker: str, database_url: str
    ) -> None:
        records = [r for r in _records(400, seed=3) if r.get("failure_within_1h") is not None]
        produce_plain(broker, "raw", [orjson.dumps(r) for r in records[:200]], [b"m"] * 200)
        wait_until(
            lambda: _snapshotted(database_url) == 200,
            timeout=90,
            what="a snapshot holding the 200 labelled rows",
        )
        taken = count_rows(database_url, snapshots)
        time.sleep(10)  # more than two intervals with nothing new: nothing is due
        assert count_rows(database_url, snapshots) == taken

        produce_plain(
            broker, "raw", [orjson.dumps(r) for r in records[200:]], [b"m"] * len(records[200:])
        )
        wait_until(
            lambda: _snapshotted(database_url) == len(records),
            timeout=90,
            what="a snapshot holding every labelled row",
        )
        requests = await _train_requests(broker, want=count_rows(database_url, snapshots))
        assert {r["model"] for r in requests} == {"machine-failure"}
        assert all(r["reason"].startswith("schedule: every 4s (") for r in requests)
        assert requests[-1]["snapshot"]["rows"] == len(records)


def _snapshotted(database_url: str) -> int:
    """The labelled rows the newest snapshot held."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.max(snapshots.c.labelled_rows))) or 0)
    finally:
        engine.dispose()


async def _train_requests(broker: str, want: int) -> list[dict]:  # type: ignore[type-arg]
    found = await read_topic(
        broker, TRAIN_REQUESTS, until=at_least(want), what=f"{want} train requests"
    )
    return values(found)


class TestDriftRetraining:
    """``retrain: {every_n_labelled_rows: 1500, drift: {psi: 0.2, window: 1h, ...}}``: the
    count cuts the first snapshot (the reference); more of the same data does not drift;
    temperature +15 does, once: a snapshot and train request whose reason names the
    feature, and the drift route shows it."""

    @pytest.fixture
    def project_dir(self, tmp_path: Path) -> Path:
        spec = yaml.safe_load((FACTORY / "millrace.yaml").read_text())
        spec["models"]["machine-failure"]["retrain"] = {
            "every_n_labelled_rows": 1500,
            "drift": {"psi": 0.2, "window": "1h", "min_rows": 200},
        }
        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "millrace.yaml").write_text(yaml.safe_dump(spec))
        return folder

    @pytest.fixture
    def features_env(self) -> dict[str, str]:
        return {"MILLRACE_FEATURES_DRIFT_CHECK_SECONDS": "0.5"}

    @staticmethod
    def _fleet() -> Iterator[dict[str, Any]]:
        """50 machines read every 10 minutes (so the 10m windows hold one or two readings
        and rows an hour apart are nearly independent), started well after the
        simulation's start so the machines' wear is spread over its cycle. Seed 1 measured
        offline: unshifted hourly windows stay under PSI 0.1 against the reference,
        temperature +15 gives about 6."""
        fleet = factory_records(machines=50, seed=1, step=timedelta(minutes=10))
        take(fleet, 5000)
        return ({"dataset": "machines", **r} for r in fleet)

    async def test_a_shift_in_the_sensors_cuts_one_snapshot_naming_the_feature(
        self, features: ProcessSpec, broker: str, database_url: str
    ) -> None:
        url = f"http://127.0.0.1:{features.env['MILLRACE_FEATURES_PORT']}"
        drift_url = f"{url}/v1/models/machine-failure/drift"
        fleet = self._fleet()
        # unlabelled: fills the feature windows, not counted, not in the reference
        warm = [{k: v for k, v in r.items() if k != "failure_within_1h"} for r in take(fleet, 50)]
        send = self._sender(broker)
        assert httpx.get(drift_url, timeout=60).status_code == 409  # no snapshot yet
        assert httpx.get(f"{url}/v1/models/nope/drift", timeout=60).status_code == 404

        send(warm + take(fleet, 1500))
        wait_until(
            lambda: count_rows(database_url, snapshots) == 1, timeout=60, what="the count snapshot"
        )

        control = take(fleet, 300)
        send(control)
        last = datetime.fromisoformat(control[-1]["ts"])
        wait_until(
            lambda: _window_end(drift_url) == last,
            timeout=60,
            what="the drift route to measure the unshifted rows",
        )
        unshifted = _drift(drift_url)
        assert unshifted["window"]["rows"] >= 200 and unshifted["new_labelled_rows"] == 300
        assert max(unshifted["psi"].values()) < 0.2 and unshifted["would_fire"] is False
        _timer_measured(url, unshifted)
        assert count_rows(database_url, snapshots) == 1

        send([{**r, "temperature": r["temperature"] + 15} for r in take(fleet, 300)])
        wait_until(
            lambda: count_rows(database_url, snapshots) == 2, timeout=60, what="a drift snapshot"
        )
        requests = await _train_requests(broker, want=2)
        assert requests[0]["reason"] == "1500 new labelled rows"
        reason = requests[1]["reason"]
        assert reason.startswith("drift: temperature_m") and "> 0.2 (1h, " in reason, reason
        drifted = _drift(drift_url)
        assert drifted["reference"]["reason"] == reason
        assert drifted["reference"]["rows"] == requests[1]["snapshot"]["rows"] == 2100
        assert set(drifted["psi"]) >= {"temperature_mean_10m", "temperature_max_10m"}

        # the drift persists against the new reference: it does not fire again
        more = [{**r, "temperature": r["temperature"] + 15} for r in take(fleet, 300)]
        send(more)
        last = datetime.fromisoformat(more[-1]["ts"])
        wait_until(
            lambda: _window_end(drift_url) == last,
            timeout=60,
            what="the drift route to measure the new rows",
        )
        again = _drift(drift_url)
        assert max(again["psi"].values()) > 0.2 and again["would_fire"] is False, again
        _timer_measured(url, again)
        assert count_rows(database_url, snapshots) == 2

        # the same, as a data scientist reads it
        shown = _cli("models", "drift", "machine-failure", "--features-url", url)
        assert shown.exit_code == 0, shown.output
        top = next(iter(again["psi"]))
        assert top in shown.output and "over the policy's threshold" in shown.output
        assert "it would not retrain now" in shown.output
        as_json = _cli("models", "drift", "machine-failure", "--features-url", url, "--json")
        assert orjson.loads(as_json.output)["psi"] == _drift(drift_url)["psi"]
        unknown = _cli("models", "drift", "nope", "--features-url", url)
        assert unknown.exit_code == 1 and "HTTP 404" in unknown.output
        assert len(unknown.output.strip().splitlines()) == 1

    @staticmethod
    def _sender(broker: str) -> Any:
        def send(records: list[dict[str, Any]]) -> None:
            # one key, one partition: the rows land in event-time order
            produce_plain(
                broker, "raw", [orjson.dumps(r) for r in records], [b"fleet"] * len(records)
            )

        return send


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env={"COLUMNS": "200"})


def _drift(url: str) -> dict[str, Any]:
    answer = httpx.get(url, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _timer_measured(url: str, measured: dict[str, Any]) -> None:
    """Wait until the leader's timer has measured what the route did (its gauge shows
    the same PSI), then a few more of its 0.5 s ticks, for a snapshot it would cut."""
    feature, value = next(iter(measured["psi"].items()))
    line = f'millrace_features_drift_psi{{feature="{feature}",model="machine-failure"}} '

    def gauge() -> float | None:
        for row in httpx.get(f"{url}/metrics", timeout=60).text.splitlines():
            if row.startswith(line):
                return float(row.removeprefix(line))
        return None

    wait_until(
        lambda: (g := gauge()) is not None and abs(g - value) < 1e-3,
        timeout=30,
        what=f"the timer's gauge for {feature} to read {value}",
    )
    time.sleep(1.5)


def _window_end(url: str) -> datetime | None:
    end = _drift(url)["window"]["end"]
    return datetime.fromisoformat(end) if end else None
