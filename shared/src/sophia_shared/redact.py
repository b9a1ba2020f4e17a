"""Secret redaction for logs, audit and error text; sanitising untrusted upstream text."""

from __future__ import annotations

import logging
import re
import traceback
import unicodedata

REDACTED = "[REDACTED]"

# Names whose values are secrets wherever they appear (arguments, settings, headers, JSON).
SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|"
    r"authorization|cookie|session[_-]?key|webhook[_-]?key|dsn)",
    re.IGNORECASE,
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host -> scheme://user:[REDACTED]@host (DSNs, URLs with credentials)
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?P<post>@)"), rf"\g<pre>{REDACTED}\g<post>"),
    # Authorization headers
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # key=value / key: value / "key": "value" where the key names a secret
    (
        re.compile(
            r"(?i)(?P<key>[\"']?[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|"
            r"private[_-]?key|passphrase)[\w.-]*[\"']?\s*[:=]\s*)(?P<q>[\"']?)[^\s\"',;&}]+"
        ),
        rf"\g<key>\g<q>{REDACTED}",
    ),
    # PEM private keys
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
        REDACTED,
    ),
    # Well-known token shapes: Sophia tokens, JWTs, GitHub/Slack/OpenAI/AWS/Retool keys
    (re.compile(r"\bsph_[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\b(ghp|gho|ghs|xox[abpr]|sk|retool_wk|retool)_[A-Za-z0-9_-]{12,}"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
]


def redact(text: str) -> str:
    """Remove tokens, passwords, keys and DSN credentials from free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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
