"""Records from a local MQTT broker (Mosquitto, say), at QoS 1 in a persistent session.

The session (``clean_session=False`` under a client id that stays the same across
restarts) makes the broker keep what arrives while the agent is down, and the PUBACK of
each message is sent only once its records are on disk (or it is a dead letter), so a
crash in between means the broker delivers it again.

aiomqtt 2.5 has no public way to delay the PUBACK (aiomqtt issue #345), so this module
turns on paho-mqtt's manual acknowledgement (``manual_ack_set`` / ``ack``, paho >= 2.0)
on the client aiomqtt wraps; that is the only place it reaches past aiomqtt's API.
A broker that cannot be reached is retried with backoff; serving never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
import structlog
from millrace_common.errors import InvalidInput

from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.mqtt_intake import Incoming

log = structlog.get_logger(__name__)

OnMessages = Callable[[list[Incoming]], Awaitable[None]]
"""``MessageIntake.take``: returns once the messages may be acknowledged."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user[:password]@]host[:port]``, or ``mqtts://`` for TLS."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise InvalidInput(
                "mqtt_url must look like mqtt://[user:password@]host[:port] (or mqtts://)",
                field="mqtt_url",
            )
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        """Without the password, for logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class MqttRecords:
    def __init__(
        self,
        *,
        address: BrokerAddress,
        client_id: str,
        topic_filter: str,
        on_messages: OnMessages,
        batch_size: int = 200,
        retry_cap: float = 30.0,
    ) -> None:
        self.address = address
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.on_messages = on_messages
        self.batch_size = batch_size
        self.retry_cap = retry_cap
        self.subscribed = asyncio.Event()
        """Set while connected and subscribed (messages will reach the agent)."""
        self.failures = 0

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:  # noqa: BLE001 - the broker may be away for days
                self.subscribed.clear()
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.warning(
                        "mqtt_unavailable",
                        broker=str(self.address),
                        error=repr(exc),
                        consecutive=self.failures,
                    )
                await asyncio.sleep(
                    next_delay(interval=1.0, failures=self.failures, cap=self.retry_cap)
                )

    async def _follow(self) -> None:
        client = self._client()
        async with client:
            await client.subscribe(self.topic_filter, qos=1)
            self.subscribed.set()
            self.failures = 0
            log.info("mqtt_subscribed", broker=str(self.address), topic=self.topic_filter)
            try:
                messages = client.messages
                async for first in messages:
                    batch = [first]
                    while len(messages) and len(batch) < self.batch_size:  # already here
                        batch.append(await anext(messages))
                    await self.on_messages([Incoming(str(m.topic), _bytes(m)) for m in batch])
                    # on_messages returned: the records are on disk (or dead letters)
                    for message in batch:
                        client._client.ack(message.mid, message.qos)
            finally:
                self.subscribed.clear()

    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=self.client_id,
            clean_session=False,
            keepalive=30,
            tls_context=ssl.create_default_context() if self.address.tls else None,
            logger=logging.getLogger("millrace_edge_agent.mqtt.paho"),
        )
        client._client.manual_ack_set(True)  # see the module docstring
        return client


def _bytes(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
