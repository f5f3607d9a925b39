from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config


class Settings(CommonSettings):
    """``MILLRACE_REGISTRY_*`` variables (plus the shared ``MILLRACE_*`` ones)."""

    model_config = service_config("registry")

    port: int = 8020
    relay_interval: float = 0.5
    signing_key_file: str = ""
    """An Ed25519 private key (PEM): site manifests and their model digests are signed
    with it. Empty: manifests are unsigned."""
