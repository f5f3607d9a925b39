"""How every Kafka client of a process connects: plaintext by default, or TLS and/or
SASL (PLAIN, SCRAM-SHA-256/512) from ``MILLRACE_KAFKA_*``. One reading for the whole
process, applied by every producer, consumer and admin client (``client_options``) and
by faust (``faust_credentials``): a service cannot have one client secured and another
not."""

from __future__ import annotations

import functools
import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from millrace_common.errors import InvalidInput
from millrace_common.settings import secret_from_file


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MILLRACE_KAFKA_", extra="ignore")

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="With SASL_*: how the client proves who it is."
    )
    sasl_username: str = Field("", description="With SASL_*: the user.")
    sasl_password: SecretStr = Field(
        SecretStr(""),
        description="With SASL_*: the password (or the file MILLRACE_KAFKA_SASL_PASSWORD_FILE "
        "names).",
    )
    ssl_cafile: str = Field("", description="With SSL/SASL_SSL: the CA bundle (PEM) to trust.")
    ssl_certfile: str = Field("", description="With SSL: the client certificate (mutual TLS).")
    ssl_keyfile: str = Field("", description="With SSL: the client certificate's key.")

    def password(self) -> str:
        from_file = secret_from_file("MILLRACE_KAFKA_SASL_PASSWORD_FILE")
        return from_file if from_file is not None else self.sasl_password.get_secret_value()

    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    def uses_tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context


@functools.cache
def security() -> KafkaSecurity:
    found = KafkaSecurity()
    if found.uses_sasl() and not (found.sasl_username and found.password()):
        raise InvalidInput(
            f"MILLRACE_KAFKA_SECURITY_PROTOCOL={found.security_protocol} needs "
            "MILLRACE_KAFKA_SASL_USERNAME and a password",
            field="kafka_sasl_username",
        )
    return found


def client_options() -> dict[str, Any]:
    """The keyword arguments every aiokafka client of this process takes."""
    found = security()
    options: dict[str, Any] = {"security_protocol": found.security_protocol}
    if found.uses_sasl():
        options |= {
            "sasl_mechanism": found.sasl_mechanism,
            "sasl_plain_username": found.sasl_username,
            "sasl_plain_password": found.password(),
        }
    if found.uses_tls():
        options["ssl_context"] = found.ssl_context()
    return options


def faust_credentials() -> Any:
    """faust's ``broker_credentials`` for the same settings (None: plaintext)."""
    import faust

    found = security()
    if found.uses_sasl():
        return faust.SASLCredentials(
            username=found.sasl_username,
            password=found.password(),
            mechanism=found.sasl_mechanism,
            ssl_context=found.ssl_context() if found.uses_tls() else None,
        )
    if found.uses_tls():
        return faust.SSLCredentials(found.ssl_context())
    return None
