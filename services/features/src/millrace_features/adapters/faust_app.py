"""A faust App that is safe on the embedded broker.

The features worker keeps no faust tables and no faust agents (its raw consumer is a
plain batch consumer, stream.py): faust runs its services and elects the leader of the
retraining timer through its own consumer group. One faust-streaming 0.15.3 race in
that consumer is handled here with faust's own extension points (a Consumer on a
Transport subclass); no library file is changed and nothing is patched globally.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

BROKER_SAFE_DEFAULTS: dict[str, Any] = {
    # Tansu holds a JoinGroup for about half the session timeout while a group forms
    # (faust's 60 s default means a 30 s join); a kill -9'd member is evicted after it.
    "broker_session_timeout": 4.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 10.0,
    # exactly_once needs InitProducerId and transactions; at-least-once with
    # idempotent effects is the platform's guarantee anyway (DESIGN §5)
    "processing_guarantee": "at_least_once",
    "broker_commit_interval": 1.0,
    "consumer_auto_offset_reset": "earliest",
    "topic_replication_factor": 1,
}


class SnapshotConsumer(aiokafka_driver.Consumer):
    """Give aiokafka a frozen, non-empty copy of the active partitions.

    faust passes its live set; when it empties during a fetch, aiokafka reads it as
    "all partitions" and drains paused ones, whose records faust then discards.
    """

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        if active_partitions is None:
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await super()._getmany(snapshot, timeout)


class SafeTransport(aiokafka_driver.Transport):
    Consumer = SnapshotConsumer


class StreamApp(faust.App):
    """faust.App with the defaults and fix above (callers may override settings)."""

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **{**BROKER_SAFE_DEFAULTS, **kwargs})

    def _new_transport(self) -> Any:  # the consumer side; producers are unchanged
        return SafeTransport(self.conf.broker_consumer, self)
