"""Values and secrets: with audit values on, what looks like a secret — by entropy, or by being one of
the settings' own secret values — is masked, in bounded work, through the real request path too."""

from __future__ import annotations

import json
import random
import secrets
import string

import anyio
import pytest
from pydantic import SecretStr
from shared.demo_server import DemoSettings, build_server
from sophia_shared.audit_shape import (
    MASK,
    MAX_KEY_CHARS,
    MAX_KEYS,
    MAX_RECORD_CHARS,
    MAX_VALUE_CHARS,
    argument_shape,
    looks_random,
    settings_secrets,
)
from sophia_shared.auth import Principal, Role
from sophia_shared.settings import ServerSettings, SuiteSettings, settings_config
from sophia_shared.testing import connect

pytestmark = pytest.mark.anyio

ADMIN = Principal("ada", Role.ADMIN, "token")

# Shapes of real credentials (random parts made here, so nothing real is in the repo), from a fixed seed
# so a run is repeatable: a fresh random key once in ~10,000 repeats enough characters to fail the entropy rule.
_RANDOM = random.Random(20261202)
_URLSAFE = string.ascii_letters + string.digits + "-_"


def _random_text(n: int, alphabet: str = _URLSAFE) -> str:
    return "".join(_RANDOM.choice(alphabet) for _ in range(n))


GITHUB_PAT = "ghp_" + _random_text(36)
AWS_SECRET = _random_text(40)
HEX_KEY = _random_text(64, "0123456789abcdef")
JWT = "eyJhbGciOiJIUzI1NiJ9." + _random_text(32) + "." + _random_text(43)


def _values(shape: dict[str, object]) -> str:
    return json.dumps(shape, ensure_ascii=False)


def test_without_values_only_names_and_types_are_kept() -> None:
    shape = argument_shape({"sql": "select 1", "limit": 5, "tags": ["a"], "x": None}, with_values=False,
                           known_secrets=["select"])
    assert shape == {"sql": "string", "limit": "number", "tags": "array", "x": "null"}


@pytest.mark.parametrize("token", [GITHUB_PAT, AWS_SECRET, HEX_KEY, JWT], ids=["github-pat", "aws", "hex", "jwt"])
def test_secret_looking_tokens_in_values_are_masked_by_entropy(token: str) -> None:
    shape = argument_shape({"note": f"use {token} for the deploy"}, with_values=True)
    assert shape["note"] == {"type": "string", "value": f"use {MASK} for the deploy"}
    assert token not in _values(shape)


@pytest.mark.parametrize("text", [
    "select region, sum(amount) from orders group by region",
    "customer_lifetime_value_by_region_and_quarter",
    "/var/lib/sophia/exports/quarterly-report-final.csv",
    "https://example.com/docs/getting-started/installation",
    "ORDERS_2024_Q1",
])
def test_ordinary_text_is_kept(text: str) -> None:
    assert argument_shape({"q": text}, with_values=True)["q"] == {"type": "string", "value": text}


def test_the_settings_own_secrets_are_masked_where_they_appear() -> None:
    class Settings(ServerSettings):
        model_config = settings_config("shapetest")
        password: SecretStr = SecretStr("correct-horse-battery")  # low entropy: only the setting can tell
        pin: SecretStr = SecretStr("4711")

    known = list(settings_secrets(Settings(), SuiteSettings()))
    assert "correct-horse-battery" in known and "4711" in known
    shape = argument_shape(
        {"comment": "the password is correct-horse-battery, ok?", "code": "4711", "count": 4711,
         "nested": {"deep": ["x", {"inner": "correct-horse-battery"}]}},
        with_values=True, known_secrets=known,
    )
    dumped = _values(shape)
    assert "correct-horse-battery" not in dumped
    assert shape["comment"] == {"type": "string", "value": f"the password is {MASK}, ok?"}
    assert shape["code"] == {"type": "string", "value": MASK}  # a short secret: masked where a value equals it
    assert shape["count"] == {"type": "number", "value": MASK}
    assert "4711" not in dumped


def test_secret_named_arguments_and_nested_keys_keep_only_their_type() -> None:
    shape = argument_shape(
        {"api_key": "abc", "confirmation_token": "t-1", "config": {"password": "hunter2", "host": "db"}},
        with_values=True,
    )
    assert shape["api_key"] == "string"
    assert shape["confirmation_token"] == "string"
    assert shape["config"] == {"type": "object", "value": {"password": "string", "host": "db"}}


def test_a_secret_cut_at_the_value_cap_is_still_masked() -> None:
    known = secrets.token_urlsafe(60)
    text = "a " * ((MAX_VALUE_CHARS - 10) // 2) + known
    value = argument_shape({"t": text}, with_values=True, known_secrets=[known])["t"]
    assert isinstance(value, dict)
    kept = str(value["value"])
    assert len(kept) <= MAX_VALUE_CHARS + 1
    assert known[:8] not in kept


def test_work_is_bounded_for_hostile_arguments() -> None:
    long_value = "v" * 1_000_000
    huge = {f"k{i}": long_value for i in range(10_000)}
    shape = argument_shape(huge, with_values=True)
    assert len(shape) == MAX_KEYS + 1 and "…" in shape
    assert len(_values(shape)) < MAX_RECORD_CHARS * 2
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    nested = argument_shape({"deep": deep}, with_values=True)
    assert len(_values(nested)) < 200
    long_key = argument_shape({"k" * 50_000: 1}, with_values=False)
    assert all(len(k) <= MAX_KEY_CHARS + 1 for k in long_key)
    big_number = argument_shape({"n": 10 ** 5000}, with_values=True)
    assert big_number["n"] == {"type": "number", "value": "[number too large]"}


def test_entropy_rule_examples() -> None:
    assert looks_random(HEX_KEY) and looks_random(AWS_SECRET) and looks_random(GITHUB_PAT)
    assert not looks_random("short1A")
    assert not looks_random("customer_lifetime_value_by_region")
    assert not looks_random("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")


async def test_audit_values_through_the_server_never_store_its_own_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo server's settings hold a secret; a caller who pastes it into an argument finds it masked."""

    class SecretDemoSettings(DemoSettings):
        model_config = settings_config("demo")
        upstream_key: SecretStr = SecretStr("plain-words-but-secret")

    server = build_server(SecretDemoSettings(audit_values=True))  # type: ignore[arg-type]
    with anyio.fail_after(5):
        async with connect(server, principal=ADMIN) as client:
            await client.call("demo_echo", {"text": "plain-words-but-secret"})
            await client.call("demo_echo", {"text": f"k {HEX_KEY[:40]}"})
            await client.call("demo_echo", {"text": "visible words"})
    dump = repr(server.audit.records())
    assert "plain-words-but-secret" not in dump
    assert HEX_KEY[:40] not in dump
    assert "visible words" in dump
    assert server.audit.verify().intact
