"""``millrace keys …``: the platform's API keys, made, listed and revoked in its database
(``auth.api_keys``), or in a keys file for an edge agent. A key's secret is printed once,
when it is made; only its SHA-256 is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from millrace_common.identity import ROLES, KeyRecord, mint_key, read_key_file

from millrace_cli.errors import CliError
from millrace_cli.options import JsonOpt
from millrace_cli.render import print_json, say

keys_app = typer.Typer(
    help="API keys: each a name and roles (" + ", ".join(sorted(ROLES)) + ", site:<id>).",
    no_args_is_help=True,
)
DatabaseOpt = Annotated[
    str,
    typer.Option(
        "--database-url",
        help="the platform's database (SQLAlchemy URL)",
        envvar="MILLRACE_DATABASE_URL",
    ),
]
DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/millrace"
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", help="a keys file (an edge agent's MILLRACE_AUTH_KEYS_FILE), not the database"
    ),
]


def table(database_url: str):  # type: ignore[no-untyped-def]
    from millrace_common.db import make_engine
    from millrace_common.keys import KeyTable

    return KeyTable(make_engine(database_url, pool_size=1))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="whose key: a person, a service, a site")],
    role: Annotated[list[str], typer.Option("--role", help="a role it holds (repeat for several)")],
    database_url: DatabaseOpt = DATABASE,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a key and print it (this once: it is not kept)."""
    token, record = mint_key(name, role)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("a") as out:
            out.write(record.line() + "\n")
        file.chmod(0o600)
    else:
        table(database_url).add(record)
    if as_json:
        print_json({**described(record), "key": token})
        return
    say(f"created key {record.key_id} for {name} ({', '.join(sorted(record.roles))})")
    say(token)


@keys_app.command("list")
def keys_list(
    database_url: DatabaseOpt = DATABASE, file: FileOpt = None, as_json: JsonOpt = False
) -> None:
    """Every key: its id, name, roles, when it was made and revoked (never its secret)."""
    found = read_key_file(file) if file is not None else table(database_url).all()
    if as_json:
        print_json([described(k) for k in found])
        return
    for key in found:
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "live"
        say(f"{key.key_id}  {key.name:<24} {','.join(sorted(key.roles)):<28} {state}")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="a key id, or a name (all its live keys)")],
    database_url: DatabaseOpt = DATABASE,
    file: FileOpt = None,
) -> None:
    """Revoke a key: services refuse it within MILLRACE_AUTH_CACHE_SECONDS (10 s)."""
    if file is not None:
        kept = [k for k in read_key_file(file) if key not in (k.key_id, k.name)]
        if len(kept) == len(read_key_file(file)):
            raise CliError(f"no key in {file} has the id or name {key!r}")
        file.write_text("".join(k.line() + "\n" for k in kept))
        say(f"removed {key} from {file}")
        return
    for revoked in table(database_url).revoke(key):
        say(f"revoked key {revoked.key_id} of {revoked.name}")


def described(key: KeyRecord) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "roles": sorted(key.roles),
        "created_at": _when(key.created_at),
        "revoked_at": _when(key.revoked_at) if key.revoked_at else None,
    }


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp or 0, UTC).isoformat(timespec="seconds")
