"""Local pre-aggregation: one record per entity and closed window of event time, sent
in order per entity, recomputed identically after a crash, source rows deleted only
after the centre's acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_common.project import Dataset, Project, load_project
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.records import NewRecord
from millrace_edge_agent.aggregate_forwarder import AggregatingForwarder
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings, load_settings
from millrace_edge_agent.intake import prepare
from millrace_edge_agent.preaggregation import WindowSummary, closed_windows, summarise
from prometheus_client import REGISTRY

from tests.support.fakes import FakeCentre
from tests.support.waiting import wait_until

SITE = "plant-agg"
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())  # a minute boundary
WIDTH = 60


def reading(
    entity: str, second: int, *, temperature: float, failure: int | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "entity_id": entity,
        "ts": datetime.fromtimestamp(T0 + second, tz=UTC).isoformat(),
        "temperature": temperature,
        "vibration": 0.5,
        "pressure": 3.0,
        "speed": 1500,
    }
    if failure is not None:
        record["failure_within_1h"] = failure
    return record


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def project(project_dir: Path) -> Project:
    return load_project(project_dir)


def open_queue(tmp_path: Path, clock: Clock) -> Queues:
    return Queues.open(
        tmp_path / "queue.sqlite3",
        max_rows=10_000,
        max_age=10 * 86400.0,
        policy="reject-new",
        clock=clock,
    )


def forwarder(
    disk: Queues, centre: FakeCentre, project: Project, clock: Clock, **options: Any
) -> AggregatingForwarder:
    return AggregatingForwarder(
        queue=disk.records,
        windows=disk.windows,
        sink=centre,
        project=project,
        site=SITE,
        width=WIDTH,
        grace=10,
        clock=clock,
        rand=lambda: 0.0,
        **options,
    )


def enqueue(disk: Queues, project: Project, records: list[dict[str, Any]]) -> None:
    disk.records.append(prepare(dataset="machines", records=records, project=project))


def test_an_aggregate_is_a_record_of_the_dataset_means_and_label_maxima() -> None:
    dataset = Dataset(
        name="machines",
        fields={"temperature": "float", "speed": "int", "running": "bool", "mode": "str"},
        labels={"failure": "int"},
    )
    rows = [
        {
            "entity_id": "m-1",
            "ts": "2026-01-01T00:00:50Z",
            "temperature": 80.0,
            "speed": 1501,
            "running": False,
            "mode": "b",
            "failure": 1,
        },
        {
            "entity_id": "m-1",
            "ts": "2026-01-01T00:00:10Z",
            "temperature": 70.0,
            "speed": 1500,
            "running": True,
            "mode": "a",
            "failure": 0,
        },
        {
            "entity_id": "m-1",
            "ts": "2026-01-01T00:00:30Z",
            "temperature": 72.0,
            "speed": 1500,
            "running": False,
            "mode": "c",
        },
    ]
    summary = summarise(
        dataset=dataset, site=SITE, entity_id="m-1", start=T0, width=WIDTH, records=rows
    )
    assert summary == {
        "entity_id": "m-1",
        "ts": "2026-01-01T00:01:00Z",
        "event_id": f"agg:{SITE}:m-1:{T0}",
        "temperature": 74.0,
        "speed": 1500,
        "running": True,
        "mode": "b",
        "failure": 1,
    }
    # the same rows in any order give the same record: a re-send is a duplicate
    assert (
        summarise(
            dataset=dataset, site=SITE, entity_id="m-1", start=T0, width=WIDTH, records=rows[::-1]
        )
        == summary
    )
    unlabelled = summarise(
        dataset=dataset, site=SITE, entity_id="m-1", start=T0, width=WIDTH, records=rows[2:]
    )
    assert "failure" not in unlabelled  # no label in the window: none invented


def window(entity: str, minute: int, *, last_arrival: float = 0.0) -> WindowSummary:
    return WindowSummary(
        dataset="machines",
        entity_id=entity,
        start=T0 + 60 * minute,
        first_seq=minute,
        last_arrival=last_arrival,
        rows=6,
    )


def test_a_window_closes_on_a_later_record_or_by_the_clock_after_grace() -> None:
    live = [window("a", 0), window("a", 1), window("b", 0)]
    during = closed_windows(live, width=WIDTH, grace=10, now=T0 + 65)
    assert [(w.entity_id, w.start) for w in during] == [("a", T0)]  # a moved on; b did not
    before_grace = closed_windows(live, width=WIDTH, grace=10, now=T0 + 69)
    assert [(w.entity_id, w.start) for w in before_grace] == [("a", T0)]
    after_grace = closed_windows(live, width=WIDTH, grace=10, now=T0 + 70)
    assert [(w.entity_id, w.start) for w in after_grace] == [("a", T0), ("b", T0)]
    # an old window whose records are still arriving (a backfill) waits for quiet
    backfill = [window("c", 0, last_arrival=T0 + 5000)]
    assert closed_windows(backfill, width=WIDTH, grace=10, now=T0 + 5005) == []
    assert closed_windows(backfill, width=WIDTH, grace=10, now=T0 + 5010) == backfill
    # oldest window first, so per entity windows leave in order
    mixed = [window("a", 2), window("b", 1), window("a", 0), window("b", 3), window("a", 3)]
    order = closed_windows(mixed, width=WIDTH, grace=10, now=T0 + 1)
    assert [(w.entity_id, w.start - T0) for w in order] == [("a", 0), ("b", 60), ("a", 120)]


async def test_closed_windows_leave_as_one_record_each_in_order_per_entity(
    tmp_path: Path, project: Project
) -> None:
    clock = Clock(T0 + 125)
    disk = open_queue(tmp_path, clock)
    # two entities, 10 s apart, two and a bit minutes; b's readings arrive out of order
    enqueue(disk, project, [reading("a", s, temperature=60.0 + s) for s in range(0, 130, 10)])
    enqueue(
        disk,
        project,
        [reading("b", s, temperature=1.0, failure=int(s == 70)) for s in (70, 60, 0, 10, 90)],
    )
    centre = FakeCentre()
    agent = forwarder(disk, centre, project, clock)
    centre.state = "down"
    assert await agent.forward_once() == 0
    assert disk.records.depth() == 18  # nothing leaves without the centre's acknowledgement
    centre.state = "up"
    assert await agent.forward_once() == 14  # a: [0,60) and [60,120); b: [0,60)
    assert [(r["entity_id"], r["ts"][11:19]) for r in centre.received] == [
        ("a", "00:01:00"),
        ("b", "00:01:00"),
        ("a", "00:02:00"),
    ]
    assert centre.received[0]["temperature"] == pytest.approx(85.0)  # mean of 60..110
    assert centre.received[2]["temperature"] == pytest.approx(145.0)
    assert await agent.forward_once() == 0  # a's [120,180) and b's [60,120) are open
    clock.now = T0 + 134  # b's last window is past its end + grace, but its rows are
    assert await agent.forward_once() == 0  # 9 s old: a backfill may still be coming
    clock.now = T0 + 135
    assert await agent.forward_once() == 3
    assert centre.received[-1] == {
        "entity_id": "b",
        "ts": "2026-01-01T00:02:00Z",
        "event_id": f"agg:{SITE}:b:{T0 + 60}",
        "temperature": 1.0,
        "vibration": 0.5,
        "pressure": 3.0,
        "speed": 1500.0,
        "failure_within_1h": 1,
    }
    assert agent.status.records_in == 17 and agent.status.forwarded == 4
    assert disk.records.depth() == 1  # a's open window waits on disk


async def test_after_a_crash_the_same_rows_give_the_same_aggregates(
    tmp_path: Path, project: Project
) -> None:
    clock = Clock(T0 + 3600)
    disk = open_queue(tmp_path, clock)
    enqueue(
        disk,
        project,
        [
            reading(e, s, temperature=50.0 + s / 7, failure=int(s == 250))
            for s in range(0, 300, 10)
            for e in ("a", "b")
        ],
    )
    clock.now += 10
    centre = FakeCentre()
    centre.state = "ack-lost"  # the centre took them; the agent never heard so
    assert await forwarder(disk, centre, project, clock).forward_once() == 0
    first = list(centre.received)
    assert len(first) == 10 and disk.records.depth() == 60
    # the process dies; a new one opens the same file
    reopened = open_queue(tmp_path, clock)
    centre.state = "up"
    assert await forwarder(reopened, centre, project, clock).forward_once() == 60
    assert centre.received[10:] == first  # same ids, same values: the centre drops them
    assert len({r["event_id"] for r in centre.received}) == 10
    assert reopened.records.depth() == 0


async def test_a_record_for_a_window_already_sent_is_dropped_and_counted(
    tmp_path: Path, project: Project
) -> None:
    clock = Clock(T0 + 100)
    disk = open_queue(tmp_path, clock)
    enqueue(disk, project, [reading("a", s, temperature=70.0) for s in (10, 20, 70)])
    centre = FakeCentre()
    agent = forwarder(disk, centre, project, clock)
    assert await agent.forward_once() == 2
    enqueue(disk, project, [reading("a", 30, temperature=99.0)])  # too late for [0,60)
    assert await agent.forward_once() == 0
    assert disk.records.drops() == {"late_for_window": 1} and disk.records.depth() == 1
    assert [r["temperature"] for r in centre.received] == [70.0]


async def test_refused_aggregates_drop_their_rows_and_the_rest_flow(
    tmp_path: Path, project: Project
) -> None:
    clock = Clock(T0 + 3600)
    disk = open_queue(tmp_path, clock)
    enqueue(disk, project, [reading("a", 10, temperature=-5.0), reading("b", 10, temperature=5.0)])
    clock.now += 10
    centre = FakeCentre()
    agent = forwarder(disk, centre, project, clock)
    assert await agent.forward_once() == 1
    assert disk.records.drops() == {"refused_by_centre": 1}
    assert await agent.forward_once() == 1
    assert [r["entity_id"] for r in centre.received] == ["b"]


async def test_records_queued_before_aggregation_was_on_go_as_they_are(
    tmp_path: Path, project: Project
) -> None:
    clock = Clock(T0 + 3600)
    disk = open_queue(tmp_path, clock)
    disk.records.append(
        [
            NewRecord(
                event_id="old-1",
                dataset="machines",
                entity_id="a",
                record={**reading("a", 0, temperature=1.0), "event_id": "old-1"},
            )
        ]
    )
    enqueue(disk, project, [reading("a", 10, temperature=3.0)])
    clock.now += 10
    centre = FakeCentre()
    agent = forwarder(disk, centre, project, clock)
    assert await agent.forward_once() == 1
    assert await agent.forward_once() == 1
    assert [r["event_id"] for r in centre.received] == ["old-1", f"agg:{SITE}:a:{T0}"]


def test_the_agent_reports_records_in_and_out(tmp_path: Path, project_dir: Path) -> None:
    settings = Settings(
        site=SITE,
        cache_dir=str(tmp_path),
        project=str(project_dir),
        forward_mode="aggregate",
        aggregate_window="1m",
        aggregate_grace="0s",
    )
    centre = FakeCentre()
    before = REGISTRY.get_sample_value("millrace_edge_forward_records_in_total") or 0
    with TestClient(create_app(bootstrap(settings, store=MemoryStore(), sink=centre))) as app:
        posted = app.post(
            "/v1/datasets/machines/records",
            json={"records": [reading("m-1", s, temperature=70.0) for s in range(0, 120, 10)]},
        )
        assert posted.status_code == 202, posted.text

        def drained() -> bool:
            return app.get("/v1/status").json()["queue_depth"] == 0

        wait_until(drained, timeout=30, what="the queue to drain", interval=0.02)
        state = app.get("/v1/status").json()
    assert state["forward_mode"] == "aggregate" and state["aggregate_window_seconds"] == 60
    assert (state["records_in"], state["records_out"]) == (12, 2)
    assert len(centre.received) == 2
    assert REGISTRY.get_sample_value("millrace_edge_forward_records_in_total") == before + 12


def test_aggregate_mode_needs_the_project_and_a_valid_window(tmp_path: Path) -> None:
    settings = Settings(
        site=SITE,
        cache_dir=str(tmp_path),
        project=str(tmp_path / "none"),
        forward_mode="aggregate",
        forward_url="http://centre:8010",
    )
    with pytest.raises(InvalidInput, match="needs the project folder") as needs:
        bootstrap(settings, store=MemoryStore())
    assert needs.value.field == "forward_mode"
    with pytest.raises(InvalidInput, match="30s, 10m") as bad:
        load_settings(overrides={"site": SITE, "aggregate_window": "a minute"})
    assert bad.value.field == "aggregate_window"
