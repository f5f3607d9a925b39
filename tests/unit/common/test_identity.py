"""The pieces of identity on their own: how a credential is read, how rules match, keys
minted and checked, and what the authenticator remembers."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from millrace_common.errors import InvalidInput
from millrace_common.identity import (
    PUBLIC,
    Authenticator,
    KeyFile,
    Rules,
    check_role,
    credential,
    mint_key,
)


def test_a_credential_comes_from_bearer_api_key_or_basic() -> None:
    assert credential([(b"authorization", b"Bearer abc")]) == "abc"
    assert credential([(b"x-api-key", b"abc")]) == "abc"
    basic = base64.b64encode(b"alice:abc")
    assert credential([(b"authorization", b"Basic " + basic)]) == "abc"
    assert credential([(b"authorization", b"Basic !!!")]) is None
    assert credential([(b"authorization", b"Bearer ")]) is None
    assert credential([(b"cookie", b"x")]) is None


def test_rules_match_first_with_path_parts_and_the_rest() -> None:
    rules = Rules(
        ("GET", "/healthz", PUBLIC),
        ("POST", "/v1/sites/{site}/heartbeats", {"site:{site}"}),
        ("GET", "/v1/**", {"scientist"}),
    )
    rule, params = rules.match("POST", "/v1/sites/s1/heartbeats")
    assert rule is not None and params == {"site": "s1"}
    assert rules.match("HEAD", "/v1/models")[0] is not None  # GET covers HEAD
    assert rules.match("DELETE", "/v1/models")[0] is None  # no rule: admin only
    assert rules.match("POST", "/v1/sites/s1/x/heartbeats")[0] is None  # one segment
    assert rules.unruled([("GET", "/healthz"), ("PUT", "/v1/x")]) == ["PUT /v1/x"]


def test_roles_are_checked_and_a_key_is_stored_only_hashed(tmp_path: Path) -> None:
    assert check_role("site:plant-7") == "site:plant-7"
    for bad in ("root", "site:", "site:../x"):
        with pytest.raises(InvalidInput):
            check_role(bad)
    token, record = mint_key("ci", ["deployer"])
    assert token.startswith(f"mr_{record.key_id}_") and token.split("_", 2)[2] not in record.line()
    assert record.matches(token.split("_", 2)[2]) and not record.matches("guess")
    with pytest.raises(InvalidInput, match="at least one role"):
        mint_key("ci", [])


def test_the_authenticator_remembers_for_its_ttl_and_reads_a_changed_file(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    token, record = mint_key("ops", ["producer"])
    file.write_text(record.line() + "\n")
    remembering = Authenticator(keys=[KeyFile(file)], ttl=60)
    forgetting = Authenticator(keys=[KeyFile(file)], ttl=0)

    async def who(auth: Authenticator, credential: str) -> str | None:
        found = await auth.authenticate(credential)
        return found.name if found else None

    assert asyncio.run(who(remembering, token)) == "ops"
    assert asyncio.run(who(forgetting, token)) == "ops"
    file.write_text("")  # revoked
    assert asyncio.run(who(remembering, token)) == "ops"  # within its ttl
    assert asyncio.run(who(forgetting, token)) is None
    assert asyncio.run(who(forgetting, "mr_000000000000_" + "x" * 43)) is None
    assert asyncio.run(who(forgetting, "not a key")) is None


def test_a_malformed_keys_file_stops_the_start_and_a_bad_edit_keeps_the_keys(
    tmp_path: Path,
) -> None:
    file = tmp_path / "keys"
    file.write_text("# a comment\nabc only-three fields\n")
    with pytest.raises(InvalidInput, match=r"keys:2"):
        KeyFile(file)
    token, record = mint_key("ops", ["producer"])
    file.write_text(record.line() + "\n")
    keys = KeyFile(file)
    file.write_text("garbage\n")
    os.utime(file, (1, 1))  # a new stamp, whatever the clock's resolution
    kept = keys.find(record.key_id)
    assert kept is not None and kept.name == "ops" and kept.matches(token.split("_", 2)[2])
