"""Principals and roles; bearer tokens stored hashed under SOPHIA_HOME; OAuth 2.1 JWT verification."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from mcp.server.auth.provider import AccessToken

from .errors import InvalidArgument, NotFound
from .paths import sophia_home
from .settings import SuiteSettings


class Role(IntEnum):
    """Ordered roles: each includes every permission of the ones below it."""

    VIEWER = 1
    DEVELOPER = 2
    DEVOPS = 3
    ADMIN = 4

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        if isinstance(value, Role):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls)
            raise InvalidArgument(f"unknown role {value!r}; use one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name (also the memory tenant), a role, and how they were authenticated."""

    name: str
    role: Role
    kind: str = "local"

    def as_meta(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.label, "kind": self.kind}

    @classmethod
    def from_meta(cls, meta: Any) -> Principal | None:
        if not isinstance(meta, dict):
            return None
        name, role = meta.get("name"), meta.get("role")
        if not isinstance(name, str) or not name or not isinstance(role, str):
            return None
        try:
            return cls(name=name, role=Role.parse(role), kind=str(meta.get("kind") or "host"))
        except InvalidArgument:
            return None


def local_principal(settings: SuiteSettings | None = None) -> Principal:
    """The principal of a stdio session: the local OS user, with the role in SOPHIA_STDIO_ROLE."""
    settings = settings or SuiteSettings()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return Principal(name=user, role=Role.parse(settings.stdio_role), kind="local")


TOKEN_PREFIX = "sph_"  # noqa: S105 - a prefix, not a secret


def _hash_token(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: Role
    created: float
    revoked: bool = False


class TokenStore:
    """Bearer tokens for HTTP, stored as SHA-256 hashes in SOPHIA_HOME/tokens.json (mode 0600)."""

    def __init__(self, path: Path | None = None):
        self.path = path or sophia_home() / "tokens.json"
        self._cache_key: tuple[int, int, int] | None = None
        self._cache: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        # Every HTTP request looks a token up: re-read the file only when it changed (a token
        # created or revoked by `sophia token` in another process is seen on the next request).
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._cache_key:
            data = json.loads(self.path.read_text())
            self._cache = dict(data.get("tokens", {}))
            self._cache_key = key
        return {k: dict(v) for k, v in self._cache.items()}

    def _save(self, tokens: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "tokens": tokens}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def create(self, name: str, role: Role) -> tuple[TokenRecord, str]:
        """Create a token; the plaintext is returned once and never stored."""
        if not name.strip():
            raise InvalidArgument("a token needs a non-empty --name")
        tokens = self._load()
        if any(t["name"] == name and not t.get("revoked") for t in tokens.values()):
            raise InvalidArgument(f"an active token named {name!r} exists; revoke it or pick another name")
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(id=secrets.token_hex(4), name=name, role=role, created=time.time())
        tokens[_hash_token(plaintext)] = {
            "id": record.id, "name": name, "role": role.label, "created": record.created, "revoked": False,
        }
        self._save(tokens)
        return record, plaintext

    def list(self) -> list[TokenRecord]:
        return [
            TokenRecord(t["id"], t["name"], Role.parse(t["role"]), t["created"], bool(t.get("revoked")))
            for t in self._load().values()
        ]

    def revoke(self, name_or_id: str) -> TokenRecord:
        tokens = self._load()
        for entry in tokens.values():
            if not entry.get("revoked") and name_or_id in (entry["name"], entry["id"]):
                entry["revoked"] = True
                self._save(tokens)
                return TokenRecord(entry["id"], entry["name"], Role.parse(entry["role"]), entry["created"], True)
        raise NotFound(f"no active token named or with id {name_or_id!r}; see `sophia token list`")

    def lookup(self, plaintext: str) -> TokenRecord | None:
        entry = self._load().get(_hash_token(plaintext))
        if entry is None or entry.get("revoked"):
            return None
        return TokenRecord(entry["id"], entry["name"], Role.parse(entry["role"]), entry["created"])


class SophiaTokenVerifier:
    """The SDK's TokenVerifier for Sophia's own bearer tokens."""

    def __init__(self, store: TokenStore | None = None):
        self.store = store or TokenStore()

    async def verify_token(self, token: str) -> AccessToken | None:
        record = self.store.lookup(token)
        if record is None:
            return None
        return AccessToken(
            token=token, client_id=record.name, scopes=[], subject=record.name,
            claims={"sophia_role": record.role.label, "sophia_kind": "token"},
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
    )
