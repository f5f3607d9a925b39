"""The agent's on-disk state beside its model cache (``millrace_common.model_cache``,
shared with serving): ``<root>/instance-id``, this agent's own id within its site."""

from __future__ import annotations

import secrets
from pathlib import Path

from millrace_common.model_cache import ModelCache, write_atomic

__all__ = ["ModelCache", "instance_id", "write_atomic"]


def instance_id(root: Path) -> str:
    """This agent's id within its site, made on first start and kept with the cache, so
    a restart rejoins its own Kafka group and resumes its own MQTT session."""
    path = root / "instance-id"
    if path.exists():
        return path.read_text().strip()
    made = secrets.token_hex(6)
    write_atomic(path, made.encode())
    return made
