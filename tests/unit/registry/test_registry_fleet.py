"""Fleet state: edge agents' heartbeats, the last state per site, and an outage the centre
sees after the fact because heartbeats queued at the site arrive late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

SITE = "plant-9"


def beat(sent_at: datetime, **state: Any) -> dict[str, Any]:
    return {
        "site": SITE,
        "models": [{"name": "machine-failure", "alias": "production", "version": 3}],
        "last_sync": sent_at.isoformat(),
        "queue_depth": 0,
        "drops": 0,
        "last_error": None,
        "sent_at": sent_at.isoformat(),
        **state,
    }


def test_the_last_heartbeat_is_the_sites_state_and_late_ones_show_the_outage(
    client: TestClient,
) -> None:
    assert client.get(f"/v1/sites/{SITE}/status").status_code == 404
    start = datetime.now(UTC) - timedelta(minutes=10)
    url = f"/v1/sites/{SITE}/heartbeats"
    # three heartbeats queued at the site during an outage, delivered together now
    for minute, depth in ((0, 10), (1, 250), (2, 400)):
        response = client.post(
            url,
            json=beat(
                start + timedelta(minutes=minute), queue_depth=depth, last_error="forward failed"
            ),
        )
        assert response.status_code == 201, response.text
    assert client.post(url, json=beat(datetime.now(UTC), queue_depth=0, drops=2)).status_code == 201
    status = client.get(f"/v1/sites/{SITE}/status").json()
    assert status["queue_depth"] == 0 and status["drops"] == 2 and status["last_error"] is None
    assert status["models"] == [{"name": "machine-failure", "alias": "production", "version": 3}]
    history = status["history"]
    assert [h["queue_depth"] for h in history] == [0, 400, 250, 10]
    assert all(h["delay_seconds"] > 60 for h in history[1:])  # the outage, seen late
    assert history[0]["delay_seconds"] < 60


def test_a_heartbeat_for_another_site_or_without_a_time_is_refused(client: TestClient) -> None:
    wrong = client.post(
        f"/v1/sites/{SITE}/heartbeats", json={**beat(datetime.now(UTC)), "site": "elsewhere"}
    )
    assert wrong.status_code == 422 and wrong.json()["field"] == "site"
    missing = client.post(f"/v1/sites/{SITE}/heartbeats", json={"site": SITE})
    assert missing.status_code == 422 and "sent_at" in missing.json()["message"]
