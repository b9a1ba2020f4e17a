"""Principals and roles; bearer tokens stored hashed (SOPHIA_HOME or PostgreSQL); OAuth 2.1 JWT verification."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthenticationError

from .errors import Conflict, InvalidArgument, NotFound, Unavailable
from .paths import sophia_home, write_atomically
from .postgres_driver import import_psycopg
from .roles import Role as Role  # re-exported: a principal carries one
from .settings import SuiteSettings

# A user name: what a token is created for and what SOPHIA_USER may say. No ':' (shared memory
# spaces are stored under "space:<name>", so no user can be one) and nothing a shell would mangle.
USER_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")


def check_user(user: str, *, setting: str = "--user") -> str:
    """`user` if it is a valid user name, else invalid_argument naming `setting`."""
    if not USER_PATTERN.fullmatch(user):
        raise InvalidArgument(
            f"{setting} {user[:80]!r} is not a user name: 1-128 of letters, digits and . _ @ + - "
            "(starting with a letter, digit or _)"
        )
    return user


@dataclass(frozen=True)
class Principal:
    """Who is calling: the person (`name`, also their memory tenant), a role, and how they were
    authenticated (`kind`; `credential` names the token, "" for the local user)."""

    name: str
    role: Role
    kind: str = "local"
    credential: str = ""

    @property
    def audit_kind(self) -> str:
        """The audit record's principal_kind: the kind, and which token (so it can be revoked)."""
        return f"{self.kind}:{self.credential}" if self.credential else self.kind

    def as_meta(self) -> dict[str, str]:
        meta = {"name": self.name, "role": self.role.label, "kind": self.kind}
        if self.credential:
            meta["credential"] = self.credential
        return meta

    @classmethod
    def from_meta(cls, meta: Any) -> Principal | None:
        if not isinstance(meta, dict):
            return None
        name, role, credential = meta.get("name"), meta.get("role"), meta.get("credential", "")
        if not isinstance(name, str) or not name or not isinstance(role, str) or not isinstance(credential, str):
            return None
        try:
            return cls(name=name, role=Role.parse(role), kind=str(meta.get("kind") or "host"), credential=credential)
        except InvalidArgument:
            return None


def os_user() -> str:
    """The OS user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def local_principal(settings: SuiteSettings | None = None) -> Principal:
    """The principal of a stdio session: SOPHIA_USER, else the OS user, with the role in SOPHIA_STDIO_ROLE."""
    settings = settings or SuiteSettings()
    user = check_user(settings.user, setting="SOPHIA_USER") if settings.user else os_user()
    return Principal(name=user, role=Role.parse(settings.stdio_role), kind="local")


TOKEN_PREFIX = "sph_"  # noqa: S105 - a prefix, not a secret


def _hash_token(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """A token's stored facts. `name` labels the token (e.g. "laptop"); `user` is who it acts as."""

    id: str
    name: str
    role: Role
    created: float
    revoked: bool = False
    user: str = ""

    def __post_init__(self) -> None:
        if not self.user:
            # Tokens made before users existed act as their name: that is where their memories are.
            object.__setattr__(self, "user", self.name)


def _file_record(entry: dict[str, Any], revoked: bool | None = None) -> TokenRecord:
    return TokenRecord(
        entry["id"], entry["name"], Role.parse(entry["role"]), entry["created"],
        bool(entry.get("revoked")) if revoked is None else revoked, str(entry.get("user") or ""),
    )


class TokenStore:
    """Bearer tokens for HTTP, stored as SHA-256 hashes in SOPHIA_HOME/tokens.json (mode 0600)."""

    def __init__(self, path: Path | None = None):
        self.path = path or sophia_home() / "tokens.json"
        self._cache_key: tuple[int, int, int] | None = None
        self._cache: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        """A copy of the stored tokens, to change and save."""
        return {k: dict(v) for k, v in self._current().items()}

    def _current(self) -> dict[str, dict[str, Any]]:
        # Every HTTP request looks a token up: re-read the file only when it changed (a token
        # created or revoked by `sophia token` in another process is seen on the next request).
        # The cache itself, not a copy: callers only read it.
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache, self._cache_key = {}, None
            return self._cache
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._cache_key:
            data = json.loads(self.path.read_text())
            # Entries written before users existed act as their name (saved so from the next write on).
            self._cache = {k: {"user": v["name"], **v} for k, v in data.get("tokens", {}).items()}
            self._cache_key = key
        return self._cache

    def _save(self, tokens: dict[str, dict[str, Any]]) -> None:
        write_atomically(self.path, json.dumps({"version": 1, "tokens": tokens}, indent=1).encode())

    def create(self, name: str, role: Role, user: str | None = None) -> tuple[TokenRecord, str]:
        """Create a token acting as `user` (None: as `name`); the plaintext is returned once and never stored."""
        user = _token_user(name, user)
        tokens = self._load()
        if any(t["name"] == name and not t.get("revoked") for t in tokens.values()):
            raise InvalidArgument(f"an active token named {name!r} exists; revoke it or pick another name")
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(id=secrets.token_hex(4), name=name, role=role, created=time.time(), user=user)
        tokens[_hash_token(plaintext)] = {
            "id": record.id, "name": name, "user": user, "role": role.label, "created": record.created,
            "revoked": False,
        }
        self._save(tokens)
        return record, plaintext

    def list(self) -> list[TokenRecord]:
        return [_file_record(t) for t in self._load().values()]

    def revoke(self, name_or_id: str) -> TokenRecord:
        tokens = self._load()
        for entry in tokens.values():
            if not entry.get("revoked") and name_or_id in (entry["name"], entry["id"]):
                entry["revoked"] = True
                self._save(tokens)
                return _file_record(entry, revoked=True)
        raise NotFound(f"no active token named or with id {name_or_id!r}; see `sophia token list`")

    def lookup(self, plaintext: str) -> TokenRecord | None:
        entry = self._current().get(_hash_token(plaintext))
        if entry is None or entry.get("revoked"):
            return None
        return _file_record(entry, revoked=False)

    def close(self) -> None:
        """Nothing to release: the file is opened per operation."""


class Tokens(Protocol):
    """What `sophia token` and the verifier need of a token store."""

    def create(self, name: str, role: Role, user: str | None = None) -> tuple[TokenRecord, str]: ...
    def list(self) -> list[TokenRecord]: ...
    def revoke(self, name_or_id: str) -> TokenRecord: ...
    def lookup(self, plaintext: str) -> TokenRecord | None: ...
    def close(self) -> None: ...


def _token_user(name: str, user: str | None) -> str:
    if not name.strip():
        raise InvalidArgument("a token needs a non-empty --name")
    # Without a user the token acts as its name, as every token did before users (a name need not
    # be a user name then: old names keep working).
    return name if user is None else check_user(user)


class TokenStoreUnavailable(AuthenticationError):
    """The token store cannot be asked: the request is refused (503), neither let in nor told 401."""


class PostgresTokenStore:
    """Bearer tokens in PostgreSQL (SOPHIA_TOKENS_DSN or SOPHIA_DATABASE_URL), shared by every host.

    Stored as SHA-256 hashes, like the file store. A verified token is trusted for `cache_s`
    before the database is asked again, so a revocation made on any host takes effect on every
    host within `cache_s` (SOPHIA_TOKEN_CACHE_S, default 1 s); unknown tokens are never cached.
    """

    _DDL = (
        """CREATE TABLE IF NOT EXISTS sophia_tokens (
          token_hash text PRIMARY KEY,
          id text NOT NULL UNIQUE,
          name text NOT NULL,
          role text NOT NULL,
          created double precision NOT NULL,
          revoked_at double precision
        )""",
        # One active token per name, enforced by the database across hosts.
        "CREATE UNIQUE INDEX IF NOT EXISTS sophia_tokens_active_name ON sophia_tokens (name) WHERE revoked_at IS NULL",
        # Added with users: rows from before it (or from a host not yet upgraded) read as user = name,
        # via coalesce, so no migration step can leave a token without a user.
        "ALTER TABLE sophia_tokens ADD COLUMN IF NOT EXISTS user_name text",
    )
    _SELECT = "SELECT id, name, role, created, revoked_at, coalesce(user_name, name) FROM sophia_tokens"
    _CACHE_MAX = 4096

    def __init__(self, dsn: str, cache_s: float = 1.0):
        # Without the driver, fail now (at start, naming the setting), not on the first request.
        self._psycopg = import_psycopg("SOPHIA_TOKENS_DSN (or SOPHIA_DATABASE_URL)")
        self.cache_s = cache_s
        self._dsn = dsn
        # One connection is enough: the database is asked once per token per `cache_s`. It is
        # reopened when the server dropped it (a restart), with no pool backoff to wait out.
        self._conn: Any = None
        self._db_lock = threading.Lock()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[TokenRecord, float]] = OrderedDict()

    def _connection(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        try:
            with conn.transaction():
                # Two hosts starting at once must not race CREATE TABLE IF NOT EXISTS.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('sophia_tokens_schema'))")
                for statement in self._DDL:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, query: str, params: tuple[Any, ...] = (), *, read: bool = False) -> list[tuple[Any, ...]]:
        """One autocommit statement; a read is retried once on a new connection if the old one was dropped."""
        psycopg = self._psycopg
        with self._db_lock:
            try:
                return self._execute(query, params)
            except psycopg.OperationalError as exc:
                dropped = self._conn is not None and self._conn.broken
                self._drop()
                if not (read and dropped):
                    raise Unavailable("the token database cannot be reached", detail=str(exc)) from exc
            try:
                return self._execute(query, params)
            except psycopg.OperationalError as exc:
                self._drop()
                raise Unavailable("the token database cannot be reached", detail=str(exc)) from exc

    def _execute(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cur = self._connection().execute(query, params)
        return list(cur.fetchall()) if cur.description else []

    @staticmethod
    def _record(row: tuple[Any, ...]) -> TokenRecord:
        return TokenRecord(row[0], row[1], Role.parse(row[2]), row[3], row[4] is not None, row[5])

    def create(self, name: str, role: Role, user: str | None = None) -> tuple[TokenRecord, str]:
        """Create a token acting as `user` (None: as `name`); the plaintext is returned once and never stored."""
        user = _token_user(name, user)
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(id=secrets.token_hex(4), name=name, role=role, created=time.time(), user=user)
        try:
            self._run(
                "INSERT INTO sophia_tokens (token_hash, id, name, role, created, user_name) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (_hash_token(plaintext), record.id, name, role.label, record.created, user),
            )
        except self._psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "sophia_tokens_active_name":
                raise InvalidArgument(
                    f"an active token named {name!r} exists; revoke it or pick another name"
                ) from None
            raise Conflict("token id collision; create the token again") from None
        return record, plaintext

    def list(self) -> list[TokenRecord]:
        rows = self._run(f"{self._SELECT} ORDER BY created, id", read=True)
        return [self._record(r) for r in rows]

    def revoke(self, name_or_id: str) -> TokenRecord:
        rows = self._run(
            """UPDATE sophia_tokens SET revoked_at = %s
               WHERE token_hash = (SELECT token_hash FROM sophia_tokens
                                   WHERE revoked_at IS NULL AND (name = %s OR id = %s) ORDER BY created LIMIT 1)
               RETURNING id, name, role, created, revoked_at, coalesce(user_name, name)""",
            (time.time(), name_or_id, name_or_id),
        )
        if not rows:
            raise NotFound(f"no active token named or with id {name_or_id!r}; see `sophia token list`")
        with self._lock:
            self._cache.clear()
        return self._record(rows[0])

    def cached(self, plaintext: str) -> TokenRecord | None:
        """The record of a token verified less than `cache_s` ago, else None (ask `lookup`)."""
        key = _hash_token(plaintext)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            record, checked = hit
            if time.monotonic() - checked >= self.cache_s:
                del self._cache[key]
                return None
            return record

    def lookup(self, plaintext: str) -> TokenRecord | None:
        """The active token's record, or None; Unavailable when the database cannot be asked."""
        record = self.cached(plaintext)
        if record is not None:
            return record
        key = _hash_token(plaintext)
        # Stamped before asking: a revocation committed while the query runs still ends the trust
        # within `cache_s` of it.
        asked = time.monotonic()
        rows = self._run(f"{self._SELECT} WHERE token_hash = %s AND revoked_at IS NULL", (key,), read=True)
        if not rows:
            return None
        record = self._record(rows[0])
        if self.cache_s > 0:
            with self._lock:
                self._cache[key] = (record, asked)
                while len(self._cache) > self._CACHE_MAX:
                    self._cache.popitem(last=False)
        return record

    def close(self) -> None:
        with self._db_lock:
            self._drop()


def token_store(settings: SuiteSettings | None = None) -> Tokens:
    """The token store the settings select: PostgreSQL when a tokens DSN is set, else SOPHIA_HOME."""
    settings = settings or SuiteSettings()
    dsn = settings.tokens_dsn.get_secret_value() if settings.tokens_dsn else ""
    if dsn.startswith(("postgresql://", "postgres://")):
        return PostgresTokenStore(dsn, cache_s=settings.token_cache_s)
    if dsn:
        raise InvalidArgument("SOPHIA_TOKENS_DSN must be a postgresql:// URL (unset: tokens under SOPHIA_HOME)")
    return TokenStore()


class SophiaTokenVerifier:
    """The SDK's TokenVerifier for Sophia's own bearer tokens."""

    def __init__(self, store: Tokens | None = None):
        self.store = store or token_store()

    async def verify_token(self, token: str) -> AccessToken | None:
        store = self.store
        if isinstance(store, PostgresTokenStore):
            # A cache miss is a database round trip: off the event loop.
            record = store.cached(token)
            if record is None:
                try:
                    record = await anyio.to_thread.run_sync(store.lookup, token)
                except Unavailable as exc:
                    raise TokenStoreUnavailable(exc.message) from exc
        else:
            record = store.lookup(token)
        if record is None:
            return None
        return AccessToken(
            token=token, client_id=record.name, scopes=[], subject=record.user,
            claims={"sophia_role": record.role.label, "sophia_kind": "token", "sophia_credential": record.name},
        )


class JwtVerifier:
    """OAuth 2.1 resource-server mode: verify a JWT's signature (JWKS), issuer, audience, expiry."""

    def __init__(self, settings: SuiteSettings, audience: str):
        import jwt

        if not settings.jwt_issuer:
            raise InvalidArgument("JWT mode needs SOPHIA_JWT_ISSUER")
        self.settings = settings
        self.audience = settings.jwt_audience or audience
        self._jwt = jwt
        if settings.jwt_jwks_file:
            self._keys = jwt.PyJWKSet.from_json(Path(settings.jwt_jwks_file).read_text())
            self._client: Any = None
        elif settings.jwt_jwks_url:
            self._client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True)
        else:
            raise InvalidArgument("JWT mode needs SOPHIA_JWT_JWKS_FILE or SOPHIA_JWT_JWKS_URL")

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = self._jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise self._jwt.InvalidKeyError("no JWKS key matches the token's kid")

    async def verify_token(self, token: str) -> AccessToken | None:
        jwt = self._jwt
        try:
            claims = jwt.decode(
                token, self._key(token), algorithms=self.settings.jwt_algorithms,
                audience=self.audience, issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError):
            return None
        role = claims.get(self.settings.jwt_role_claim)
        try:
            parsed = Role.parse(role) if isinstance(role, str) else Role.VIEWER
        except InvalidArgument:
            return None
        return AccessToken(
            token=token, client_id=str(claims.get("azp") or claims.get("client_id") or claims["sub"]),
            scopes=str(claims.get("scope", "")).split(), expires_at=int(claims["exp"]),
            subject=str(claims["sub"]), resource=self.audience,
            claims={"sophia_role": parsed.label, "sophia_kind": "jwt", "iss": claims["iss"]},
        )


def principal_from_access_token(token: AccessToken) -> Principal:
    claims = token.claims or {}
    return Principal(
        name=token.subject or token.client_id,
        role=Role.parse(str(claims.get("sophia_role", "viewer"))),
        kind=str(claims.get("sophia_kind", "token")),
        credential=str(claims.get("sophia_credential", "")),
    )
