"""The HTTP edge: bearer tokens and JWTs, roles, Host/Origin checks, body cap, over a real socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from shared.demo_server import DemoSettings, build_server
from sophia_shared.auth import Role, TokenStore
from sophia_shared.errors import Forbidden
from sophia_shared.http import http_app
from sophia_shared.settings import SuiteSettings
from sophia_shared.testing import error_code, serve_in_thread, structured

INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _serve(suite: SuiteSettings | None = None, allow_unauthenticated: bool = False) -> Iterator[str]:
    server = build_server(DemoSettings())

    def make_app(port: int) -> Any:
        return http_app(server, transport="http", host="127.0.0.1", port=port,
                        allow_unauthenticated=allow_unauthenticated, suite=suite or SuiteSettings())

    with serve_in_thread(make_app, factory=True) as url:
        yield url


@pytest.fixture
def token_url() -> Iterator[str]:
    yield from _serve()


def _post(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> httpx.Response:
    return httpx.post(f"{url}/mcp", headers={**HEADERS, **(headers or {})},
                      content=body if body is not None else json.dumps(INIT).encode(), timeout=10)


def test_no_token_is_401_advertising_no_authorization_server(token_url: str) -> None:
    """Sophia tokens have no authorization server: the 401 must not send an OAuth client to one."""
    response = _post(token_url)
    assert response.status_code == 401
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and "resource_metadata" not in challenge
    assert httpx.get(f"{token_url}/.well-known/oauth-protected-resource/mcp", timeout=10).status_code == 404


def test_bad_token_is_401(token_url: str) -> None:
    assert _post(token_url, {"Authorization": "Bearer sph_not-a-real-token-at-all"}).status_code == 401


def test_revoked_token_is_401(token_url: str) -> None:
    store = TokenStore()
    _, token = store.create("gone", Role.ADMIN)
    store.revoke("gone")
    assert _post(token_url, {"Authorization": f"Bearer {token}"}).status_code == 401


def test_bad_origin_is_403_and_bad_host_is_421(token_url: str) -> None:
    _, token = TokenStore().create("web", Role.ADMIN)
    auth = {"Authorization": f"Bearer {token}"}
    assert _post(token_url, {**auth, "Origin": "http://evil.example"}).status_code == 403
    assert _post(token_url, {**auth, "Host": "evil.example:80"}).status_code == 421
    assert _post(token_url, {**auth, "Origin": token_url}).status_code == 200


def test_oversized_body_is_413(token_url: str) -> None:
    _, token = TokenStore().create("big", Role.ADMIN)
    big = json.dumps({**INIT, "pad": "x" * (5 * 1024 * 1024)}).encode()
    assert _post(token_url, {"Authorization": f"Bearer {token}"}, big).status_code == 413


async def _call(url: str, token: str, tool: str, args: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await client.call_tool(tool, args)


@pytest.mark.anyio
async def test_token_principal_and_role_over_http(token_url: str) -> None:
    store = TokenStore()
    _, viewer = store.create("vera-laptop", Role.VIEWER)
    with anyio.fail_after(10):
        ok = await _call(token_url, viewer, "demo_echo", {"text": "hi"})
        denied = await _call(token_url, viewer, "demo_write", {"value": 1})
    assert structured(ok)["principal"] == "vera-laptop"
    assert structured(ok)["role"] == "viewer"
    assert error_code(denied) == "forbidden"


def test_unauthenticated_http_is_refused_off_loopback() -> None:
    with pytest.raises(Forbidden):
        http_app(build_server(DemoSettings()), transport="http", host="0.0.0.0", port=9,
                 allow_unauthenticated=True)


def test_unauthenticated_on_loopback_when_explicit() -> None:
    for url in _serve(allow_unauthenticated=True):
        assert _post(url).status_code == 200


# -- OAuth 2.1 resource server (JWT) -----------------------------------------------------------


@pytest.fixture
def jwt_setup(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    suite = SuiteSettings(auth_mode="jwt", jwt_issuer="https://idp.example", jwt_jwks_file=jwks)
    for url in _serve(suite):
        yield url, key


def _jwt(key: Any, audience: str, role: str = "developer", exp_in: int = 300) -> str:
    now = int(time.time())
    claims = {"iss": "https://idp.example", "sub": "jdoe", "aud": audience, "exp": now + exp_in, "iat": now,
              "sophia_role": role}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.mark.anyio
async def test_jwt_with_the_right_audience_is_accepted(jwt_setup: tuple[str, Any]) -> None:
    url, key = jwt_setup
    with anyio.fail_after(10):
        result = await _call(url, _jwt(key, f"{url}/mcp", role="devops"), "demo_echo", {"text": "x"})
    assert structured(result)["principal"] == "jdoe"
    assert structured(result)["role"] == "devops"


def test_jwt_401_and_metadata_name_the_configured_issuer(jwt_setup: tuple[str, Any]) -> None:
    url, _ = jwt_setup
    challenge = _post(url).headers.get("www-authenticate", "")
    metadata_url = f"{url}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    meta = httpx.get(metadata_url, timeout=10).json()
    assert meta["resource"].rstrip("/") == f"{url}/mcp"
    assert [s.rstrip("/") for s in meta["authorization_servers"]] == ["https://idp.example"]


def test_jwt_with_the_wrong_audience_is_401(jwt_setup: tuple[str, Any]) -> None:
    url, key = jwt_setup
    assert _post(url, {"Authorization": f"Bearer {_jwt(key, 'https://other.example/mcp')}"}).status_code == 401


def test_expired_jwt_is_401(jwt_setup: tuple[str, Any]) -> None:
    url, key = jwt_setup
    assert _post(url, {"Authorization": f"Bearer {_jwt(key, f'{url}/mcp', exp_in=-60)}"}).status_code == 401


def test_jwt_signed_by_another_key_is_401(jwt_setup: tuple[str, Any]) -> None:
    url, _ = jwt_setup
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _post(url, {"Authorization": f"Bearer {_jwt(other, f'{url}/mcp')}"}).status_code == 401


@pytest.mark.anyio
async def test_confirmation_by_elicitation_over_streamable_http(token_url: str) -> None:
    """Streamable HTTP is stateless (2026-07-28): elicitation rides the Resolve/InputRequired flow."""
    _, token = TokenStore().create("ops", Role.DEVOPS)

    async def accept(context: Any, params: Any) -> Any:
        from mcp.types import ElicitResult

        return ElicitResult(action="accept", content={"confirm": True})

    headers = {"Authorization": f"Bearer {token}"}
    with anyio.fail_after(10):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=10) as http,
            Client(streamable_http_client(f"{token_url}/mcp", http_client=http), elicitation_callback=accept) as client,
        ):
            result = await client.call_tool("demo_drop", {"table": "orders"})
    assert structured(result) == {"dropped": "orders"}


@pytest.mark.anyio
async def test_sse_transport_with_a_token() -> None:
    from mcp.client.sse import sse_client

    server = build_server(DemoSettings())
    _, token = TokenStore().create("sse-user", Role.VIEWER)

    def make_app(port: int) -> Any:
        return http_app(server, transport="sse", host="127.0.0.1", port=port)

    with serve_in_thread(make_app, factory=True) as url:
        assert httpx.get(f"{url}/sse", timeout=5).status_code == 401
        with anyio.fail_after(10):
            transport = sse_client(f"{url}/sse", headers={"Authorization": f"Bearer {token}"})
            async with Client(transport) as client:
                result = await client.call_tool("demo_echo", {"text": "over sse"})
    assert structured(result)["principal"] == "sse-user"


def test_token_store_sees_new_and_revoked_tokens_from_another_process(sophia_home: Path) -> None:
    """Lookups are cached per file version: a token made or revoked elsewhere counts at once."""
    serving = TokenStore()
    _record, token = TokenStore().create("dana", Role.DEVELOPER)
    found = serving.lookup(token)
    assert found is not None and found.name == "dana"
    TokenStore().revoke("dana")
    assert serving.lookup(token) is None
