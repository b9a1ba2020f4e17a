"""Secret redaction for logs, audit and error text; sanitising untrusted upstream text.

Every pattern here runs on caller-controlled text, so every pattern runs on RE2: an automaton
without backtracking, linear in the text whatever the pattern (Python's `re` took minutes on
100,000 word characters with the old key=value pattern). RE2's `\\b` is ASCII: a token glued to a
non-ASCII letter is redacted where `re` would not have been (more, never less); `\\w` and `\\s`
are spelled out below as the Unicode classes `re` uses.
"""

from __future__ import annotations

import logging
import re
import traceback
import unicodedata
from typing import Any

import re2

REDACTED = "[REDACTED]"
# Caller text quoted in an error message (an unknown tool name, a bad key) is cut to this many
# characters first: an answer names what was wrong, it does not echo a megabyte back.
CALLER_TEXT_LIMIT = 200

# Names whose values are secrets wherever they appear (arguments, settings, headers, JSON).
SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|"
    r"authorization|cookie|session[_-]?key|webhook[_-]?key|dsn)",
    re.IGNORECASE,
)

# What Python's `re` means by \s and \w on str (RE2's own are ASCII-only).
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_WORD = r"\pL\pN_"

# (pattern, replacement, needles): a pattern runs only when one of its needles is in the text
# (all of them are necessary parts of any match), so ordinary text costs a few substring scans.
# (RE2 ships no type stubs: its compiled patterns are Any here.)
_PATTERNS: list[tuple[Any, str, tuple[str, ...]]] = [
    # scheme://user:password@host -> scheme://user:[REDACTED]@host (DSNs, URLs with credentials)
    (
        re2.compile(rf"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@{_SPACE}]+:)[^@{_SPACE}]+(?P<post>@)"),
        rf"\g<pre>{REDACTED}\g<post>",
        ("://",),
    ),
    # Authorization headers
    (re2.compile(rf"(?i)\b(bearer|basic)[{_SPACE}]+[A-Za-z0-9._~+/=-]{{8,}}"), rf"\1 {REDACTED}", ()),
    # key=value / key: value / "key": "value" where the key names a secret
    (
        re2.compile(
            rf"(?i)(?P<key>[\"']?[{_WORD}.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|"
            rf"private[_-]?key|passphrase)[{_WORD}.-]*[\"']?[{_SPACE}]*[:=][{_SPACE}]*)(?P<q>[\"']?)"
            rf"[^{_SPACE}\"',;&}}]+"
        ),
        rf"\g<key>\g<q>{REDACTED}",
        (":", "="),
    ),
    # PEM private keys
    (
        re2.compile(r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"),
        REDACTED,
        ("-----BEGIN ",),
    ),
    # Well-known token shapes: Sophia tokens, JWTs, GitHub/Slack/OpenAI/AWS/Retool keys
    (re2.compile(r"\bsph_[A-Za-z0-9_-]{16,}"), REDACTED, ("sph_",)),
    (re2.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED, ("eyJ",)),
    (re2.compile(r"\b(ghp|gho|ghs|xox[abpr]|sk|retool_wk|retool)_[A-Za-z0-9_-]{12,}"), REDACTED, ("_",)),
    (re2.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED, ("sk-",)),
    (re2.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED, ("AKIA",)),
]

_SURROGATE = re.compile("[\ud800-\udfff]")


def redact(text: str) -> str:
    """Remove tokens, passwords, keys and DSN credentials from free text (linear in its length)."""
    text = _encodable(text)
    for pattern, replacement, needles in _PATTERNS:
        if not needles or any(needle in text for needle in needles):
            text = pattern.sub(replacement, text)
    return text


def _encodable(text: str) -> str:
    """`text` with lone surrogates (valid in a Python str, e.g. from JSON's "\\ud800") replaced by
    U+FFFD: RE2 works on UTF-8, which cannot carry them."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def clip(text: str, limit: int = CALLER_TEXT_LIMIT) -> str:
    """Caller text cut to `limit` characters (with an ellipsis saying how much went), for quoting
    in an error message before any other processing."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def is_secret_name(name: str) -> bool:
    """True when a field or argument name says its value is a secret."""
    return bool(SECRET_NAME.search(name))


# Bidi overrides/isolates and zero-width characters can make stored text render as something
# else than it is (and smuggle instructions); control characters can break terminals and logs.
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def sanitize_untrusted(text: str) -> str:
    """Strip control, bidi-control and zero-width characters from text that came from outside."""
    out: list[str] = []
    for ch in text:
        if ch in ("\n", "\t"):
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co") or ch in _INVISIBLE:
            continue
        out.append(ch)
    return "".join(out)


class RedactingFilter(logging.Filter):
    """Redact secrets from a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str = "sophia") -> logging.Logger:
    """A logger whose records are redacted (use it for every log line Sophia writes)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
