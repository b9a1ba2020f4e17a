"""Redaction of secrets and sanitising of untrusted text."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sophia_shared.redact import _PATTERNS, _SPACE, CALLER_TEXT_LIMIT, REDACTED, clip, redact, sanitize_untrusted


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://app:s3cr3t-pw@db.internal:5432/prod", "s3cr3t-pw"),
        ("Authorization: Bearer abcdef0123456789abcdef", "abcdef0123456789abcdef"),
        ("password=hunter2 user=bob", "hunter2"),
        ('{"api_key": "AbCdEf123456"}', "AbCdEf123456"),
        ("token: sph_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "sph_AAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("key AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
        ("hook retool_wk_0123456789abcdef", "retool_wk_0123456789abcdef"),
        ("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqZG9lIn0.c2lnbmF0dXJlLXZhbHVl", "eyJzdWIiOiJqZG9lIn0"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_ordinary_text_is_untouched() -> None:
    text = "select id, name from customers where region = 'EU' -- tokens of appreciation"
    assert redact(text) == text


def test_sanitize_strips_controls_and_bidi_but_keeps_text() -> None:
    dirty = "pay\u202eusd 001\u202c now\x1b[31m\u200b ok\nnext\tline"
    clean = sanitize_untrusted(dirty)
    assert clean == "payusd 001 now[31m ok\nnext\tline"


# -- linear time on hostile text ------------------------------------------------------------

# The patterns as they were on Python's `re` (super-linear on long word runs: an unknown tool
# name of 10,000 characters froze a server for 12 s). On short text they are the reference the
# RE2 patterns must agree with.
_RE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?P<post>@)"), rf"\g<pre>{REDACTED}\g<post>"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (
        re.compile(
            r"(?i)(?P<key>[\"']?[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|"
            r"private[_-]?key|passphrase)[\w.-]*[\"']?\s*[:=]\s*)(?P<q>[\"']?)[^\s\"',;&}]+"
        ),
        rf"\g<key>\g<q>{REDACTED}",
    ),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), REDACTED),
    (re.compile(r"\bsph_[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\b(ghp|gho|ghs|xox[abpr]|sk|retool_wk|retool)_[A-Za-z0-9_-]{12,}"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
]


def _redact_with_re(text: str) -> str:
    for pattern, replacement in _RE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_PIECES = [
    "password", "PassWD", "api-key", "token", "Secret", "passphrase", "private_key", "bearer ", "Basic ",
    "postgres://", "u:", "@h", "://", "sph_", "eyJ", "ghp_", "sk-", "AKIA", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", "=", ":", " ", "\t", "\n", '"', "'", ",", ";", "&", "}", ".", "-", "_",
    "a", "Z", "0", "9", "abcdefghijklmnop", "ABCDEFGHIJKLMNOP0123",
]


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_re2_patterns_redact_exactly_what_the_re_patterns_did(text: str) -> None:
    assert redact(text) == _redact_with_re(text)


def test_every_pattern_runs_on_an_engine_without_backtracking() -> None:
    import re2

    for pattern, _replacement, _needles in _PATTERNS:
        assert isinstance(pattern, re2._Regexp), pattern.pattern


def test_whitespace_class_is_what_re_calls_whitespace() -> None:
    import re2

    ours = re2.compile(f"[{_SPACE}]")
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and re.match(r"\s", chr(c))]
    assert all(ours.fullmatch(c) for c in spaces)
    assert not any(ours.fullmatch(c) for c in "a_-.:=\u200b\ufeff\x00")


# A megabyte of each shape that made a backtracking pattern super-linear: a word run (the key=value
# pattern), scheme-like and user:password-like runs without an '@', JWT and token prefixes that
# never complete, PEM headers without an end, and secret words with no value.
_HOSTILE = [
    "a" * 1_000_000,
    "token" * 200_000,
    "a://b:" * 170_000,
    "a1+" * 330_000,
    "eyJ-" * 250_000,
    "sph-" * 250_000,
    "-----BEGIN PRIVATE KEY-----" * 37_000,
    "password " * 110_000,
    "\"token\" :" * 100_000,
    "é" * 500_000 + "\ud800",
]


def test_hostile_megabytes_are_redacted_in_one_pass() -> None:
    # Run in a child with a bounded wait: a super-linear pattern would run for hours there (a
    # 10,000-character run already took 12 s), and a hang must fail the test, not the suite.
    code = (
        "import json, sys\n"
        "from sophia_shared.redact import redact\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(sum(1 for t in texts if redact(t)))\n"
    )
    payload = json.dumps(_HOSTILE)
    done = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(_HOSTILE))


def test_lone_surrogates_do_not_break_redaction() -> None:
    assert redact("password=\ud800x and \udfff") == f"password={REDACTED} and \ufffd"


def test_clip_keeps_short_text_and_cuts_long_text() -> None:
    assert clip("tool_name") == "tool_name"
    long = "x" * (CALLER_TEXT_LIMIT + 50)
    cut = clip(long)
    assert cut.startswith("x" * CALLER_TEXT_LIMIT)
    assert cut.endswith("… (50 more characters)")
    assert len(cut) < CALLER_TEXT_LIMIT + 30


@pytest.mark.anyio
async def test_a_megabyte_tool_name_gets_a_short_clear_answer() -> None:
    from shared.demo_server import DemoSettings, build_server
    from sophia_shared.auth import Principal, Role
    from sophia_shared.testing import connect, error_of

    server = build_server(DemoSettings())
    name = "a" * 1_000_000
    with anyio.fail_after(60):
        async with connect(server, principal=Principal("vera", Role.VIEWER)) as client:
            missing = await client.call(name)
            bad_key = await client.call("demo_echo", {"text": "hi", "k" * 1_000_000: 1})
            good = await client.call("demo_echo", {"text": "still here"})
    error = error_of(missing)
    assert error["code"] == "not_found"
    assert len(error["message"]) < 400
    assert "more characters" in error["message"]
    # An unknown key is ignored by the tool, but its megabyte name still passes the audit shape's
    # redaction (that cost 3.6 s at 5,000 characters).
    assert bad_key.is_error is False
    assert good.is_error is False
