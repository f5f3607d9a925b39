"""Keys in the database: the ``auth.api_keys`` table that ``millrace keys`` writes and
every central service reads (through ``identity.Authenticator``, which keeps answers a
few seconds). Only a secret's SHA-256 is stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from millrace_common.errors import MillraceError, NotFound, Unavailable
from millrace_common.identity import ADMIN, KeyRecord, mint_key

SCHEMA = "auth"
metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False, index=True),
    sa.Column("roles", sa.String(2000), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    schema=SCHEMA,
)


class KeyTable:
    """The keys of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False

    def ensure(self) -> None:
        """The schema and table, made if missing (idempotent, safe to race): for the
        writers (``millrace keys``, ``millrace db roles``), never the services, whose role
        may only read them."""
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            metadata.create_all(connection, checkfirst=True)
        self._ready = True

    def exists(self) -> bool:
        if not self._ready:
            self._ready = sa.inspect(self.engine).has_table(api_keys.name, schema=SCHEMA)
        return self._ready

    def add(self, record: KeyRecord) -> None:
        self.ensure()
        with self.engine.begin() as connection:
            connection.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    name=record.name,
                    roles=",".join(sorted(record.roles)),
                    secret_sha256=record.secret_sha256,
                    created_at=datetime.fromtimestamp(record.created_at, UTC),
                )
            )

    def all(self) -> list[KeyRecord]:
        self.ensure()
        with self.engine.connect() as connection:
            rows = connection.execute(api_keys.select().order_by(api_keys.c.created_at)).all()
        return [_record(row) for row in rows]

    def revoke(self, which: str) -> list[KeyRecord]:
        """Revoke the key with id ``which``, or every live key named ``which``."""
        self.ensure()
        now = datetime.fromtimestamp(time.time(), UTC)
        live = api_keys.c.revoked_at.is_(None)
        with self.engine.begin() as connection:
            rows = connection.execute(
                api_keys.select().where(
                    live, (api_keys.c.key_id == which) | (api_keys.c.name == which)
                )
            ).all()
            if not rows:
                raise NotFound(f"no live key has the id or name {which!r}", field="key")
            connection.execute(
                api_keys.update()
                .where(api_keys.c.key_id.in_([r.key_id for r in rows]))
                .values(revoked_at=now)
            )
        return [_record(row) for row in rows]

    def find(self, key_id: str) -> KeyRecord | None:
        try:
            if not self.exists():
                return None  # no key was ever made here
            with self.engine.connect() as connection:
                row = connection.execute(
                    api_keys.select().where(api_keys.c.key_id == key_id)
                ).first()
        except (DBAPIError, SQLAlchemyError) as exc:
            raise Unavailable(
                f"keys cannot be checked: the database is unreachable ({type(exc).__name__})",
                retry_after=2,
            ) from exc
        return _record(row) if row is not None else None


def _record(row: sa.Row) -> KeyRecord:  # type: ignore[type-arg]
    revoked = row.revoked_at
    return KeyRecord(
        key_id=row.key_id,
        name=row.name,
        roles=frozenset(row.roles.split(",")),
        secret_sha256=row.secret_sha256,
        created_at=_aware(row.created_at).timestamp(),
        revoked_at=_aware(revoked).timestamp() if revoked is not None else None,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def provision(
    table: KeyTable,
    folder: Path,
    identities: dict[str, str],
    *,
    site_keys: Path | None = None,
) -> list[str]:
    """A key per ``name → role`` whose token file in ``folder`` does not exist yet, its
    token written there (mode 600) for the service that presents it (``MILLRACE_TOKEN_FILE``);
    an admin key's hashed line also goes to ``site_keys``, an edge agent's keys file.
    Idempotent: what an earlier start made is kept. The names it made."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, role in identities.items():
        token_file = folder / name
        if token_file.exists():
            continue
        token, record = mint_key(name, [role])
        table.add(record)
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        if site_keys is not None and role == ADMIN:
            with site_keys.open("a") as out:
                out.write(record.line() + "\n")
            site_keys.chmod(0o600)
        made.append(name)
    return made


def main(argv: list[str] | None = None) -> None:
    """``python -m millrace_common.keys provision DIR NAME=ROLE…``: the keys a deployment
    starts with (compose's ``keys-init``), in the database ``MILLRACE_DATABASE_URL`` names."""
    import argparse
    import os

    from millrace_common.db import make_engine

    parser = argparse.ArgumentParser(prog="python -m millrace_common.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("provision", help="make the keys a deployment starts with")
    command.add_argument("folder", type=Path, help="where each token is written, one file a name")
    command.add_argument("identities", nargs="+", help="NAME=ROLE, e.g. trainer=trainer")
    command.add_argument("--site-keys", type=Path, help="an edge agent's keys file (admin keys)")
    command.add_argument(
        "--signing-key", type=Path, help="the registry's Ed25519 signing key, made if missing"
    )
    args = parser.parse_args(argv)
    wanted = {}
    for item in args.identities:
        name, _, role = item.partition("=")
        if not name or not role:
            raise SystemExit(f"provision: {item!r} is not NAME=ROLE")
        wanted[name] = role
    url = os.environ.get("MILLRACE_DATABASE_URL", "")
    if not url:
        raise SystemExit("provision: MILLRACE_DATABASE_URL is not set")
    try:
        made = provision(
            KeyTable(make_engine(url, pool_size=1)), args.folder, wanted, site_keys=args.site_keys
        )
    except MillraceError as exc:
        raise SystemExit(f"provision: {exc.message}") from None
    except SQLAlchemyError as exc:
        raise SystemExit(f"provision: the database is unreachable: {type(exc).__name__}") from None
    print(f"keys made: {', '.join(made) or 'none (all were there)'} in {args.folder}")
    if args.signing_key is not None:
        from millrace_common.signing import ensure_key_pair

        print(f"signing key {args.signing_key}, public key {ensure_key_pair(args.signing_key)}")


if __name__ == "__main__":
    main()
