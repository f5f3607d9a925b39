"""Edge agent: idle memory, start-up time to first prediction, 1-row prediction
throughput and latency, forwarding throughput; with the project folder, records through
the feature engine and predictions by entity id.

The agent runs as a real process (``millrace-edge-agent run``) on a local-directory
object store holding one real ONNX model. Forwarding is measured by filling the queue
while the centre is away, then starting a minimal centre that acknowledges every batch
(202), and timing the drain: the agent's side of store and forward (SQLite reads,
batching, HTTP, acks), not ingest's or Kafka's. The same drain is timed once more with
local pre-aggregation on (60 s windows), counting records and bytes in and out.

Features at the site: an agent with the factory project takes FEATURE_RECORDS readings
of FEATURE_MACHINES machines, one a second each (2 000 s of event time: the 10-minute
windows full, the 20-minute keep horizon pruning), in 500-record posts; each 202 means
the records, their readings and their feature rows are on disk. Then 1-entity
predictions (the online row looked up) from 16 connections, and from 4 while another
client keeps posting records. Idle memory is read before the records arrive.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.objectstore import LocalStore

from bench._load import Stats, load, request_bytes
from tests.support.models import deploy_to_site, instance

SITE = "bench-site"
SITE_ENV = {"MILLRACE_AUTH": "off", "MILLRACE_EDGE_AGENT_ALLOW_UNSIGNED": "true"}
"""The site's own figures, without keys or signatures (serving's rows measure a key's
cost; a signature is checked once per model, not per request)."""
MODEL = "machine-failure"
RECORDS = 20_000
BATCH = 500
T0 = 1767225600  # 2026-01-01T00:00:00Z
FACTORY = Path(__file__).resolve().parents[1] / "examples" / "factory"
FEATURE_MACHINES = 20
FEATURE_RECORDS = 40_000
RECORDS_TARGET = 2_000  # records/s through the engine at a site (issue 10)
IDLE_TARGET_MIB = 150


class _Ack(BaseHTTPRequestHandler):
    received_bytes = 0  # request bodies taken, over the whole run

    def do_POST(self) -> None:
        _Ack.received_bytes += len(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(202)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: object) -> None:
        return None


def _publish(root: Path) -> None:
    deploy_to_site(LocalStore(root), site=SITE, name=MODEL)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _first_prediction(base: str) -> bool:
    try:
        response = httpx.post(
            f"{base}/v1/models/{MODEL}/predict", json={"instances": [instance()]}, timeout=2
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _predictions(port: int) -> Stats:
    """1-row predict requests from 16 keep-alive connections for 3 s (serving's load)."""
    body = json.dumps({"instances": [instance()]}).encode()
    return load(port, request_bytes(f"/v1/models/{MODEL}/predict", body), concurrency=16)


def _fill(base: str, *, count: int = RECORDS, machines: int = 50, prefix: str = "m") -> float:
    """``count`` readings of ``machines`` machines, one a second each (by default 400 s
    of event time); records/s."""
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for first in range(0, count, BATCH):
            records = [
                {
                    "entity_id": f"{prefix}-{i % machines}",
                    "ts": T0 + i // machines,
                    "temperature": 70.0 + i % 7,
                    "vibration": 0.2 + i % 5 / 100,
                    "pressure": 3.0,
                    "speed": 1500.0 - i % 3,
                }
                for i in range(first, min(first + BATCH, count))
            ]
            client.post(
                f"{base}/v1/datasets/machines/records", json={"records": records}
            ).raise_for_status()
    return count / (time.perf_counter() - started)


def _depth(base: str) -> int:
    return int(httpx.get(f"{base}/v1/status", timeout=5).json()["queue_depth"])


def _drain(base: str, centre_port: int) -> tuple[float, int]:
    """Start an acknowledging centre, time the queue's drain: records/s and bytes sent."""
    _Ack.received_bytes = 0
    centre = ThreadingHTTPServer(("127.0.0.1", centre_port), _Ack)
    threading.Thread(target=centre.serve_forever, daemon=True).start()
    started = time.perf_counter()
    try:
        wait_until(lambda: _depth(base) == 0, timeout=300, what="the queue to drain", interval=0.05)
        return RECORDS / (time.perf_counter() - started), _Ack.received_bytes
    finally:
        centre.shutdown()
        centre.server_close()


def _aggregated(root: Path, env: dict[str, str]) -> tuple[float, dict[str, int], int]:
    """The drain with pre-aggregation on: records/s in, the agent's in/out, bytes out."""
    port, centre_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = Supervisor(root / "logs-aggregate")
    supervisor.start(
        ProcessSpec(
            name="edge-aggregate",
            argv=[script("millrace-edge-agent"), "run", "--site", SITE],
            env={
                **env,
                "MILLRACE_EDGE_AGENT_PORT": str(port),
                "MILLRACE_EDGE_AGENT_CACHE_DIR": str(root / "site-aggregate"),
                "MILLRACE_EDGE_AGENT_FORWARD_URL": f"http://127.0.0.1:{centre_port}",
                "MILLRACE_PROJECT": str(FACTORY),
                "MILLRACE_EDGE_AGENT_FORWARD_MODE": "aggregate",
                "MILLRACE_EDGE_AGENT_AGGREGATE_WINDOW": "60s",
                "MILLRACE_EDGE_AGENT_AGGREGATE_GRACE": "0s",
            },
            ready_url=f"{base}/healthz",
        )
    )
    try:
        _fill(base)
        rate, sent = _drain(base, centre_port)
        state = httpx.get(f"{base}/v1/status", timeout=5).json()
    finally:
        supervisor.stop_all()
    return rate, {"in": state["records_in"], "out": state["records_out"]}, sent


@dataclass(frozen=True)
class SiteFeatures:
    idle_mib: float
    records_per_s: float
    busy_mib: float
    entities: int
    readings: int
    by_entity: Stats
    during_intake: Stats


def _entity_predictions(port: int, *, concurrency: int) -> Stats:
    body = json.dumps({"entity_ids": ["m-7"]}).encode()
    return load(port, request_bytes(f"/v1/models/{MODEL}/predict", body), concurrency=concurrency)


def _site_features(root: Path, env: dict[str, str]) -> SiteFeatures:
    """An agent with the project: records through the engine, entity-id predictions."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = Supervisor(root / "logs-features")
    running = supervisor.start(
        ProcessSpec(
            name="edge-features",
            argv=[script("millrace-edge-agent"), "run", "--site", SITE],
            env={
                **env,
                "MILLRACE_EDGE_AGENT_PORT": str(port),
                "MILLRACE_EDGE_AGENT_CACHE_DIR": str(root / "site-features"),
                "MILLRACE_EDGE_AGENT_FORWARD_URL": "",  # the site's side only
                "MILLRACE_PROJECT": str(FACTORY),
            },
            ready_url=f"{base}/healthz",
        )
    )
    try:
        wait_until(lambda: _first_prediction(base), timeout=60, what="a first prediction")
        time.sleep(2.0)  # idle: the poller waiting
        idle = _rss_mib(running.popen.pid)
        rate = _fill(base, count=FEATURE_RECORDS, machines=FEATURE_MACHINES)
        features = httpx.get(f"{base}/v1/status", timeout=5).json()["features"]
        by_entity = _entity_predictions(port, concurrency=16)
        busy = _rss_mib(running.popen.pid)
        feeding = threading.Thread(
            target=_fill, args=(base,), kwargs={"count": 10_000, "prefix": "n"}, daemon=True
        )
        feeding.start()
        during = _entity_predictions(port, concurrency=4)
        feeding.join()
    finally:
        supervisor.stop_all()
    return SiteFeatures(
        idle_mib=idle,
        records_per_s=rate,
        busy_mib=busy,
        entities=features["entities"],
        readings=features["readings"],
        by_entity=by_entity,
        during_intake=during,
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _print_site_features(site: SiteFeatures) -> None:
    print(
        f"edge agent with the project, idle RSS:{site.idle_mib:7.1f} MiB "
        f"(target < {IDLE_TARGET_MIB} MiB: {_met(site.idle_mib < IDLE_TARGET_MIB)}); "
        f"{site.busy_mib:.1f} MiB with {site.entities} full windows ({site.readings} readings kept)"
    )
    print(
        f"edge agent records -> feature rows:  {site.records_per_s:8.0f} records/s "
        f"({BATCH}-record POSTs, queued + featurised + online rows, fsynced; "
        f"{FEATURE_MACHINES} machines at 1 reading/s, 10-minute windows full; "
        f"target {RECORDS_TARGET}: {_met(site.records_per_s >= RECORDS_TARGET)})"
    )
    by_entity, during = site.by_entity, site.during_intake
    print(
        f"edge agent predict by entity id:     {by_entity.rps:8.0f} req/s (c=16), "
        f"p50 {by_entity.p50_ms:.2f} ms, p99 {by_entity.p99_ms:.2f} ms, {by_entity.errors} errors; "
        f"while records flow in: {during.rps:.0f} req/s (c=4), p99 {during.p99_ms:.1f} ms"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _publish(root / "objects")
        port, centre_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **SITE_ENV,
            "MILLRACE_OBJECT_STORE": f"file://{root / 'objects'}",
            "MILLRACE_BROKER": "",
            "MILLRACE_EDGE_AGENT_PORT": str(port),
            "MILLRACE_EDGE_AGENT_CACHE_DIR": str(root / "site"),
            "MILLRACE_EDGE_AGENT_FORWARD_URL": f"http://127.0.0.1:{centre_port}",
            "MILLRACE_EDGE_AGENT_FORWARD_RETRY_CAP": "0.2",
            "MILLRACE_LOG_LEVEL": "warning",
            "MILLRACE_PROJECT": "",
        }
        supervisor = Supervisor(root / "logs")
        spec = ProcessSpec(
            name="edge", argv=[script("millrace-edge-agent"), "run", "--site", SITE], env=env
        )
        try:
            started = time.perf_counter()
            running = supervisor.start(spec)
            wait_until(
                lambda: _first_prediction(base),
                timeout=60,
                what="a first prediction",
                interval=0.02,
            )
            startup = time.perf_counter() - started
            time.sleep(2.0)  # idle: the poller and the forwarder waiting
            rss = _rss_mib(running.popen.pid)
            predict = _predictions(port)
            accept_rate = _fill(base)
            drain_rate, raw_bytes = _drain(base, centre_port)
        finally:
            supervisor.stop_all()
        agg_rate, agg_counts, agg_bytes = _aggregated(root, env)
        site = _site_features(root, env)
    print(f"edge agent idle RSS:                 {rss:8.1f} MiB")
    print(f"edge agent start to first prediction:{startup:8.2f} s")
    print(
        f"edge agent predict (1 row, c=16):    {predict.rps:8.0f} req/s, "
        f"p50 {predict.p50_ms:.2f} ms, p99 {predict.p99_ms:.2f} ms, {predict.errors} errors"
    )
    print(
        f"edge agent accept into disk queue:   {accept_rate:8.0f} records/s "
        f"({BATCH}-record POSTs, fsynced)"
    )
    print(
        f"edge agent forwarding throughput:    {drain_rate:8.0f} records/s "
        f"({RECORDS} queued records, batches of 500, to an acknowledging centre)"
    )
    print(
        f"edge agent aggregate-mode forwarding:{agg_rate:8.0f} records/s in, "
        f"{agg_counts['in']} records in -> {agg_counts['out']} out "
        f"({agg_counts['in'] / max(agg_counts['out'], 1):.0f}x fewer), "
        f"{raw_bytes / 1024:.0f} KiB raw -> {agg_bytes / 1024:.0f} KiB "
        f"(50 machines at 1 reading/s, 60 s windows)"
    )
    _print_site_features(site)
    print(f"(cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()
