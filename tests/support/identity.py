"""Credentials for the access tests: one key per role, in a keys file a service reads
(``MILLRACE_AUTH_KEYS_FILE``) or in a database's ``auth.api_keys``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from millrace_common.db import make_engine
from millrace_common.identity import mint_key
from millrace_common.keys import KeyTable

ROLES = ("producer", "scientist", "deployer", "trainer", "admin", "site:s1", "site:s2")


@dataclass(frozen=True)
class Keys:
    """A token per role (each key holds that one role), and where they are kept."""

    tokens: dict[str, str]
    file: Path

    def settings(self) -> dict[str, str]:
        """Settings of a service that requires them (keyword arguments)."""
        return {"auth": "required", "auth_keys_file": str(self.file)}

    def env(self) -> dict[str, str]:
        """The same, as a service process's environment."""
        return {"MILLRACE_AUTH": "required", "MILLRACE_AUTH_KEYS_FILE": str(self.file)}

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def key_file(folder: Path, roles: tuple[str, ...] = ROLES) -> Keys:
    """A keys file in ``folder`` with one key per role, each named after its role."""
    file = folder / "keys"
    tokens = {}
    lines = []
    for role in roles:
        token, record = mint_key(role.replace(":", "-"), [role])
        tokens[role] = token
        lines.append(record.line())
    file.write_text("\n".join(lines) + "\n")
    return Keys(tokens=tokens, file=file)


def database_keys(database_url: str, roles: tuple[str, ...] = ROLES) -> dict[str, str]:
    """A key per role in the database's ``auth.api_keys``: role → token."""
    table = KeyTable(make_engine(database_url))
    tokens = {}
    for role in roles:
        token, record = mint_key(role.replace(":", "-"), [role])
        table.add(record)
        tokens[role] = token
    return tokens
