"""Who is calling, and what they may do: bearer credentials with roles, checked in front
of every route of every service (``Guard``), by rules each service declares (``Rules``).

Credentials come as ``Authorization: Bearer <token>``, ``X-API-Key: <token>`` or, for a
browser on the registry's UI, HTTP Basic with the token as the password. A token is one of

- a **key** made by ``millrace keys create``: ``mr_<id>_<secret>``, kept hashed (SHA-256
  of a 256-bit secret) in the database's ``auth.api_keys`` table, or in a keys file
  (``MILLRACE_AUTH_KEYS_FILE``) where there is no database, as at a site;
- an **OIDC JWT** from the team's identity provider, verified against the issuer's JWKS
  (PyJWT), its roles taken from a claim.

Roles: ``producer`` (records, predictions), ``scientist`` (read, runs, candidate
versions, train requests), ``deployer`` (read, aliases, traffic, deployments, loading
models), ``trainer`` (the trainer service: versions that passed its checks, runs),
``site:<id>`` (that site's own manifest, heartbeats and forwarding) and ``admin``
(everything). ``MILLRACE_AUTH=off`` turns the check off; it is on by default.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from millrace_common.errors import Forbidden, InvalidInput, MillraceError, Unauthorized, Unavailable
from millrace_common.http import error_response, status_of

log = structlog.get_logger("millrace.identity")
REFUSED = Counter(
    "millrace_auth_refused_total",
    "Requests refused for their credentials: 401 none or unknown, 403 not allowed, 503 "
    "keys cannot be checked",
    ["status"],
)


PRODUCER, SCIENTIST, DEPLOYER, TRAINER, ADMIN = (
    "producer",
    "scientist",
    "deployer",
    "trainer",
    "admin",
)
ROLES = frozenset({PRODUCER, SCIENTIST, DEPLOYER, TRAINER, ADMIN})
SITE_PREFIX = "site:"
ANY_SITE = "site:*"
"""In a rule: any site's credential (a site forwarding its records to the centre)."""
READERS = frozenset({SCIENTIST, DEPLOYER, TRAINER})
PUBLIC: frozenset[str] = frozenset({"*"})
"""In a rule: anyone, with or without credentials (health, metrics, the API documents)."""
OPEN_ROUTES: tuple[tuple[str, str, frozenset[str]], ...] = tuple(
    ("GET", path, PUBLIC)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc")
) + (("GET", "/docs/oauth2-redirect", PUBLIC),)
"""What every service leaves open: health, readiness, metrics and its API documents."""
_SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_KEY = re.compile(r"mr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")


def check_role(role: str) -> str:
    """``role`` if it names a role, else an ``InvalidInput`` naming the choices."""
    if role in ROLES:
        return role
    if role.startswith(SITE_PREFIX) and _SITE_ID.fullmatch(role.removeprefix(SITE_PREFIX)):
        return role
    raise InvalidInput(
        f"unknown role {role!r}: one of {', '.join(sorted(ROLES))} or site:<id>", field="roles"
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its name (the audit log's actor) and its roles."""

    name: str
    roles: frozenset[str]
    via: str
    """``key`` or ``oidc``."""

    def may(self, allowed: frozenset[str], params: dict[str, str]) -> bool:
        if ADMIN in self.roles or allowed is PUBLIC:
            return True
        for role in allowed:
            if role in self.roles:
                return True
            if role == ANY_SITE and any(r.startswith(SITE_PREFIX) for r in self.roles):
                return True
            if "{" in role and _filled(role, params) in self.roles:
                return True
        return False


def _filled(role: str, params: dict[str, str]) -> str | None:
    """``site:{site}`` with the path's ``site``; None when the path has no such part."""
    try:
        return role.format_map(params)
    except (KeyError, ValueError):
        return None


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller of ``request``; None when authentication is off."""
    found: Principal | None = request.scope.get("state", {}).get("principal")
    return found


def actor_of(request: Request, claimed: str) -> str:
    """Who the audit log names: the authenticated principal; the client's own claim only
    when authentication is off (there is nobody else to name)."""
    principal = principal_of(request)
    return principal.name if principal is not None else claimed


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as it is stored: never its secret, only the secret's SHA-256."""

    key_id: str
    name: str
    roles: frozenset[str]
    secret_sha256: str
    created_at: float
    revoked_at: float | None = None

    def matches(self, secret: str) -> bool:
        return self.revoked_at is None and hmac.compare_digest(self.secret_sha256, _digest(secret))

    def principal(self) -> Principal:
        return Principal(name=self.name, roles=self.roles, via="key")

    def line(self) -> str:
        """Its line in a keys file: id, name, roles, digest."""
        return f"{self.key_id} {self.name} {','.join(sorted(self.roles))} {self.secret_sha256}"


def mint_key(name: str, roles: Iterable[str]) -> tuple[str, KeyRecord]:
    """A new key: the token to hand over once, and the record to store."""
    granted = frozenset(check_role(r) for r in roles)
    if not granted:
        raise InvalidInput("a key needs at least one role", field="roles")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,119}", name):
        raise InvalidInput(
            "a key's name is letters, digits and _ . @ : - (at most 120)", field="name"
        )
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = KeyRecord(key_id, name, granted, _digest(secret), time.time())
    return f"mr_{key_id}_{secret}", record


def _digest(secret: str) -> str:
    # the secret is 256 random bits: a plain digest is as strong as a slow hash here
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyLookup(Protocol):
    """Where keys are kept: the database's table or a keys file."""

    def find(self, key_id: str) -> KeyRecord | None: ...


class KeyFile:
    """Keys listed in a file, one ``id name roles sha256`` a line (``millrace keys create
    --file``): for an edge agent, which has no database. Read again when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp = self._mtime()
        self._keys = {k.key_id: k for k in read_key_file(self.path)}  # malformed: no start

    def _mtime(self) -> float | None:
        return self.path.stat().st_mtime if self.path.exists() else None

    def find(self, key_id: str) -> KeyRecord | None:
        stamp = self._mtime()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._keys = {k.key_id: k for k in read_key_file(self.path)}
            except InvalidInput as exc:  # an edit gone wrong: the keys read before stay
                log.error("keys_file_unreadable", path=str(self.path), error=exc.message)
        return self._keys.get(key_id)


def read_key_file(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4 or not re.fullmatch(r"[0-9a-f]{64}", parts[3]):
            raise InvalidInput(
                f"{path}:{number}: expected 'id name roles sha256'", field="auth_keys_file"
            )
        key_id, name, roles, digest = parts
        found.append(
            KeyRecord(key_id, name, frozenset(roles.split(",")), digest, path.stat().st_mtime)
        )
    return found


# --- OIDC ---------------------------------------------------------------------------------


class OidcVerifier:
    """JWTs of one issuer, verified against its JWKS (fetched once, then again for an
    unknown key id: a rotated signing key is picked up by itself)."""

    ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")

    def __init__(
        self, *, issuer: str, audience: str, jwks_url: str = "", roles_claim: str = "roles"
    ) -> None:
        import jwt  # only where OIDC is configured

        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.roles_claim = roles_claim
        self.jwks_url = jwks_url
        self._jwt = jwt
        self._jwks: Any = None

    def _keys(self) -> Any:
        """The JWKS client, made at the first token (the provider may be away at start)."""
        if self._jwks is None:
            self._jwks = self._jwt.PyJWKClient(
                self.jwks_url or self._discover(), lifespan=3600, timeout=5
            )
        return self._jwks

    def _discover(self) -> str:
        import httpx

        where = f"{self.issuer}/.well-known/openid-configuration"
        try:
            return str(httpx.get(where, timeout=5).raise_for_status().json()["jwks_uri"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise Unavailable(
                f"the identity provider's {where} could not be read: {exc}", retry_after=2
            ) from exc

    def verify(self, token: str) -> Principal | None:
        jwt = self._jwt
        try:
            key = self._keys().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(self.ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(
                f"the identity provider's keys could not be read: {exc}", retry_after=2
            ) from exc
        except jwt.PyJWTError as exc:
            log.info("token_refused", reason=str(exc)[:200])
            return None
        granted = claims.get(self.roles_claim, [])
        if isinstance(granted, str):
            granted = granted.split()
        roles = frozenset(r for r in granted if isinstance(r, str) and _is_role(r))
        return Principal(name=f"oidc:{claims['sub']}", roles=roles, via="oidc")


def _is_role(role: str) -> bool:
    try:
        check_role(role)
    except InvalidInput:
        return False
    return True


# --- who is calling -----------------------------------------------------------------------


class Authenticator:
    """Token → principal, through keys and OIDC, with answers kept ``ttl`` seconds (a
    revoked key stops working within that time; a lookup costs a database query)."""

    def __init__(
        self,
        *,
        keys: Iterable[KeyLookup] = (),
        oidc: OidcVerifier | None = None,
        ttl: float = 10.0,
        capacity: int = 10_000,
    ) -> None:
        self.keys = list(keys)
        self.oidc = oidc
        self.ttl = ttl
        self.capacity = capacity
        self._known: dict[str, tuple[Principal | None, float]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        known = self._known.get(token)
        now = time.monotonic()
        if known is not None and known[1] > now:
            return known[0]
        principal = await asyncio.to_thread(self._look_up, token)
        if len(self._known) >= self.capacity:
            self._known.clear()  # bounded: a flood of made-up tokens cannot grow it
        self._known[token] = (principal, now + self.ttl)
        return principal

    def _look_up(self, token: str) -> Principal | None:
        key = _KEY.fullmatch(token)
        if key is not None:
            key_id, secret = key.groups()
            for lookup in self.keys:
                record = lookup.find(key_id)
                if record is not None:
                    return record.principal() if record.matches(secret) else None
            return None
        if self.oidc is not None and token.count(".") == 2:
            return self.oidc.verify(token)
        return None


def credential(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token a request carries, if any."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return rest.strip() or None
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(rest.strip(), validate=True).decode()
                except ValueError:
                    return None
                return decoded.partition(":")[2] or None
    return None


# --- what they may do ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    template: str
    allowed: frozenset[str]


class Rules:
    """A service's access rules, first match wins: ``(methods, path template, roles)``.
    A template's ``{name}`` matches one path segment, a trailing ``**`` the rest. A path
    no rule matches is refused to all but ``admin``: a route is open only by a rule."""

    def __init__(self, *rules: tuple[str, str, Iterable[str]]) -> None:
        self.rules = [
            Rule(
                frozenset(methods.split()) | ({"HEAD"} if "GET" in methods.split() else set()),
                _compile(template),
                template,
                allowed if allowed is PUBLIC else frozenset(allowed),
            )
            for methods, template, allowed in rules
        ]
        self._seen: dict[tuple[str, str], tuple[Rule | None, dict[str, str]]] = {}

    def match(self, method: str, path: str) -> tuple[Rule | None, dict[str, str]]:
        seen = self._seen.get((method, path))
        if seen is not None:
            return seen
        found: tuple[Rule | None, dict[str, str]] = (None, {})
        for rule in self.rules:
            matched = rule.pattern.fullmatch(path)
            if matched is not None and method in rule.methods:
                found = (rule, matched.groupdict())
                break
        if len(self._seen) >= 4096:
            self._seen.clear()
        self._seen[(method, path)] = found
        return found

    def unruled(self, operations: Iterable[tuple[str, str]]) -> list[str]:
        """Of ``(method, path template)`` pairs, those no rule covers."""
        return [f"{m} {p}" for m, p in operations if self.match(m, p)[0] is None]


def _compile(template: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\{[A-Za-z_]+\}|\*\*)", template):
        if piece == "**":
            parts.append(".*")
        elif piece.startswith("{"):
            parts.append(f"(?P<{piece[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


class Guard:
    """Plain ASGI in front of a service's routes: the caller authenticated, then allowed
    by the service's rules, or answered 401/403 (503 while keys cannot be looked up) in
    the app's error body. The principal is in ``request.state.principal``."""

    def __init__(self, app: ASGIApp, *, rules: Rules, authenticator: Authenticator) -> None:
        self.app = app
        self.rules = rules
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule, params = self.rules.match(scope["method"], scope["path"])
        if rule is not None and rule.allowed is PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope)
            if rule is None and ADMIN not in principal.roles:
                raise Forbidden("no rule lets this credential call this route")
            if rule is not None and not principal.may(rule.allowed, params):
                raise Forbidden(f"this route needs one of the roles: {_roles(rule.allowed)}")
        except MillraceError as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal:
        token = credential(scope["headers"])
        if token is None:
            raise Unauthorized(
                "credentials are required: Authorization: Bearer <key or token>, "
                "or X-API-Key: <key>"
            )
        principal = await self.authenticator.authenticate(token)
        if principal is None:
            raise Unauthorized("these credentials are not known (revoked, expired or mistyped)")
        return principal


def _roles(allowed: frozenset[str]) -> str:
    return ", ".join(sorted(allowed | {ADMIN}))


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: MillraceError) -> None:
    status = status_of(exc)
    REFUSED.labels(str(status)).inc()
    answer = error_response(Request(scope), status=status, code=exc.code, message=exc.message)
    if isinstance(exc, Unauthorized):
        # a browser asks for the key itself (any user name, the key as the password)
        answer.headers["WWW-Authenticate"] = 'Bearer, Basic realm="millrace"'
    if isinstance(exc, Unavailable):
        answer.headers["Retry-After"] = "2"
    await answer(scope, receive, send)
