"""The centre and a site compute the same feature rows: the same factory records (some
late, some sent twice) go to ``raw``, where the centre's features worker (a process, on
a broker of the test's own, writing Postgres) turns them into offline rows, and over
REST to an edge agent (a process), which computes them with the same engine; the agent
is killed with -9 half-way and resumes its windows from its queue file. Every event's
features must agree within 1e-9."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, wait_until

from tests.support.edge import forwarding_agent
from tests.support.features import count_rows, factory_raw, stored_features
from tests.support.kafka import produce_plain

pytestmark = pytest.mark.integration
BATCH = 100
TOLERANCE = 1e-9


@pytest.fixture
def broker(fresh_broker: str) -> str:
    """A broker of this test's own: the centre's windows hold these records only."""
    return fresh_broker


def parity_records(count: int, *, seed: int) -> list[dict[str, Any]]:
    """Factory records of 12 machines, 30 s apart, each with an event id; a tenth
    arrive one to three readings late, a twentieth are sent again, one of those again
    with other values (the first counts, at the centre as at the site)."""
    records = factory_raw(count, seed=seed, machines=12, tag=f"parity{seed}")
    rng = random.Random(seed)
    for i in rng.sample(range(count - 40), count // 10):
        late = records.pop(i)
        records.insert(i + rng.randint(12, 36), late)
    for i in rng.sample(range(count), count // 20):
        records.insert(min(len(records), i + rng.randint(1, 60)), dict(records[i]))
    records.insert(count // 2, {**records[count // 2 - 30], "temperature": 1e6})
    return records


def post_to_site(base: str, records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The agent's rows, the first per event id (as the centre's offline store keeps it)."""
    rows: dict[str, dict[str, float]] = {}
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(records), BATCH):
            batch = [
                {k: v for k, v in r.items() if k != "dataset"} for r in records[start:][:BATCH]
            ]
            answer = client.post(
                f"{base}/v1/datasets/machines/records",
                params={"rows": "true"},
                json={"records": batch},
            )
            assert answer.status_code == 202, answer.text
            for row in answer.json()["rows"]:
                rows.setdefault(row["event_id"], row["features"])
    return rows


def differences(
    centre: dict[str, dict[str, float]], site: dict[str, dict[str, float]]
) -> list[str]:
    found = [f"{e}: only at the centre" for e in centre.keys() - site.keys()]
    found += [f"{e}: only at the site" for e in site.keys() - centre.keys()]
    for event_id in centre.keys() & site.keys():
        a, b = centre[event_id], site[event_id]
        if a.keys() != b.keys() or any(
            not math.isclose(a[k], b[k], rel_tol=0, abs_tol=TOLERANCE) for k in a
        ):
            found.append(f"{event_id}: centre {a} != site {b}")
    return sorted(found)


def test_the_site_computes_the_centre_s_feature_rows(
    features: ProcessSpec,
    supervisor: Supervisor,
    broker: str,
    database_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> None:
    records = parity_records(1200, seed=11)
    events = len({r["event_id"] for r in records})
    produce_plain(
        broker,
        "raw",
        [orjson.dumps(r) for r in records],
        [r["entity_id"].encode() for r in records],  # per entity in order, as at the site
    )
    spec, base = forwarding_agent(
        name="edge-parity",
        site="plant-parity",
        tmp_path=tmp_path,
        project_dir=project_dir,
        forward_url="",
    )
    supervisor.start(spec)
    half = len(records) // 2
    site = post_to_site(base, records[:half])
    supervisor.kill(spec.name)  # kill -9: the windows must come back from the queue file
    supervisor.start(spec)
    site.update({e: f for e, f in post_to_site(base, records[half:]).items() if e not in site})
    wait_until(
        lambda: count_rows(database_url) >= events,
        timeout=120,
        what=f"{events} offline rows at the centre",
    )
    centre = stored_features(database_url)
    assert len(centre) == len(site) == events
    assert differences(centre, site) == []
    supervisor.stop(spec.name)
