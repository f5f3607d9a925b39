"""Kafka security from ``MILLRACE_KAFKA_*``: the options every client of the process
gets (aiokafka producers, consumers and admin clients, faust's credentials), checked as
configuration: the broker the tests run (Tansu) speaks plaintext only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import faust
import pytest
from millrace_common import kafka_security, messaging
from millrace_common.errors import InvalidInput
from millrace_common.kafka_security import client_options, faust_credentials


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Each test reads the environment anew (the process reads it once)."""
    for name in list(__import__("os").environ):
        if name.startswith("MILLRACE_KAFKA_"):
            monkeypatch.delenv(name)
    kafka_security.security.cache_clear()
    yield monkeypatch
    kafka_security.security.cache_clear()


def test_plaintext_is_the_default() -> None:
    assert client_options() == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials() is None


def test_sasl_over_tls_reaches_every_client(fresh: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password = tmp_path / "kafka-password"
    password.write_text("s3cret\n")
    fresh.setenv("MILLRACE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    fresh.setenv("MILLRACE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    fresh.setenv("MILLRACE_KAFKA_SASL_USERNAME", "millrace-features")
    fresh.setenv("MILLRACE_KAFKA_SASL_PASSWORD_FILE", str(password))
    fresh.setenv("MILLRACE_KAFKA_SSL_CAFILE", certifi.where())
    options = client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == (
        "SCRAM-SHA-256",
        "millrace-features",
    )
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    credentials = faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "millrace-features"


async def test_the_platforms_clients_are_built_with_them(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("MILLRACE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    fresh.setenv("MILLRACE_KAFKA_SASL_MECHANISM", "PLAIN")
    fresh.setenv("MILLRACE_KAFKA_SASL_USERNAME", "u")
    fresh.setenv("MILLRACE_KAFKA_SASL_PASSWORD", "p")
    built: list[dict[str, Any]] = []

    class Capture:
        def __init__(self, *_topics: str, **kwargs: Any) -> None:
            built.append(kwargs)

    fresh.setattr(messaging, "AIOKafkaProducer", Capture)
    fresh.setattr(messaging, "AIOKafkaConsumer", Capture)
    producer = messaging.Producer("127.0.0.1:1", source="t")
    try:
        await producer.start()
    except AttributeError:
        pass  # Capture has no start(): the constructor's arguments are what counts
    loop = messaging.ConsumerLoop(
        bootstrap="127.0.0.1:1",
        topics=["t"],
        group_id="g",
        handler=None,  # type: ignore[arg-type]
        producer=producer,
        name="t",
    )
    try:
        await loop.run()
    except AttributeError:
        pass
    assert len(built) == 2
    for kwargs in built:
        assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
        assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"]) == ("PLAIN", "u")


def test_sasl_without_a_user_is_a_configuration_error(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("MILLRACE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(InvalidInput, match="MILLRACE_KAFKA_SASL_USERNAME"):
        client_options()
