"""Redaction of secrets and sanitising of untrusted text."""

from __future__ import annotations

import pytest
from sophia_shared.redact import REDACTED, redact, sanitize_untrusted


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
