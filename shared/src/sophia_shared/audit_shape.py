"""What an audit record keeps of a call's arguments: their shape, and with values on, masked values.

Without values: each argument's name and JSON type. With values (SOPHIA_<SERVER>_AUDIT_VALUES=1):
also the value, except that arguments whose name says secret keep only their type, and inside
every kept string (and nested key) any occurrence of one of the settings' own secret values, and
any long high-entropy token (keys, tokens, passwords that look random), is replaced by MASK.
All work is bounded: key and string lengths, items, depth and the whole record are capped, and
each step is linear in what it reads.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from .redact import is_secret_name, redact

MASK = "[masked]"
MAX_KEYS = 64
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 500
MAX_ITEMS = 32
MAX_DEPTH = 4
MAX_RECORD_CHARS = 8_000
# Known secrets shorter than this are masked only where a whole value equals them: as substrings
# they would mask ordinary text.
MIN_SUBSTRING_SECRET = 6
_MAX_SECRET_CHARS = 4_096
# Tokens in the alphabets keys and tokens are written in (base64, base64url, hex, JWT dots).
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-.~]{20,}")
_HEX = frozenset("0123456789abcdefABCDEF")


def argument_shape(arguments: Mapping[str, Any], *, with_values: bool,
                   known_secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The audit shape of `arguments` (see the module docstring). `known_secrets` is read only with values."""
    masker = _Masker(_usable_secrets(known_secrets) if with_values else [])
    budget = _Budget(MAX_RECORD_CHARS)
    shape: dict[str, Any] = {}
    for index, (key, value) in enumerate(arguments.items()):
        if index >= MAX_KEYS:
            shape["…"] = f"{len(arguments) - MAX_KEYS} more arguments"
            break
        name = masker.text(_clip(str(key), MAX_KEY_CHARS))
        kind = json_kind(value)
        if with_values and not is_secret_name(name[:MAX_KEY_CHARS]) and budget.left > 0:
            shape[name] = {"type": kind, "value": _value(value, masker, budget, 0)}
        else:
            shape[name] = kind
        budget.spend(len(name))
    return shape


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def settings_secrets(*models: BaseModel) -> Iterator[str]:
    """Every SecretStr/SecretBytes value in these settings (and in models nested in them)."""
    for model in models:
        yield from _secrets_in(model, 0)


def _secrets_in(value: Any, depth: int) -> Iterator[str]:
    if depth > 4:
        return
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode("utf-8", "replace")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name, None), depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item, depth + 1)


def _usable_secrets(known: Iterable[str]) -> list[str]:
    found = {s[:_MAX_SECRET_CHARS] for s in known if isinstance(s, str) and s}
    return sorted(found, key=len, reverse=True)  # longest first: a secret containing another goes whole


class _Budget:
    def __init__(self, chars: int):
        self.left = chars

    def spend(self, chars: int) -> None:
        self.left -= chars


class _Masker:
    def __init__(self, secrets: list[str]):
        self.whole = frozenset(secrets)
        self.parts = [s for s in secrets if len(s) >= MIN_SUBSTRING_SECRET]
        self.longest = max((len(s) for s in self.parts), default=0)

    def text(self, text: str) -> str:
        if text in self.whole:
            return MASK
        for secret in self.parts:
            if secret in text:
                text = text.replace(secret, MASK)
        return _TOKEN.sub(_mask_random, text)

    def string(self, value: str) -> str:
        """Mask within a window a little longer than what is kept, so no secret is cut in half."""
        window = value[:MAX_VALUE_CHARS + max(self.longest, 256)]
        return _clip(self.text(window), MAX_VALUE_CHARS, cut=len(value) > MAX_VALUE_CHARS)


def _value(value: Any, masker: _Masker, budget: _Budget, depth: int) -> Any:
    if budget.left <= 0:
        return json_kind(value)
    if value is None or isinstance(value, bool | float):
        budget.spend(8)
        return value
    if isinstance(value, int):
        if value.bit_length() > 64:
            return "[number too large]"
        text = str(value)
        budget.spend(len(text))
        return value if masker.text(text) == text else MASK
    if isinstance(value, str):
        kept = masker.string(value)
        budget.spend(len(kept))
        return kept
    if depth >= MAX_DEPTH or not isinstance(value, list | tuple | dict):
        return json_kind(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS or budget.left <= 0:
                out["…"] = f"{len(value) - index} more"
                break
            name = masker.text(_clip(str(key), MAX_KEY_CHARS))
            budget.spend(len(name))
            out[name] = json_kind(item) if is_secret_name(name) else _value(item, masker, budget, depth + 1)
        return out
    items: list[Any] = []
    for index, item in enumerate(value):
        if index >= MAX_ITEMS or budget.left <= 0:
            items.append(f"… {len(value) - index} more")
            break
        items.append(_value(item, masker, budget, depth + 1))
    return items


def _clip(text: str, limit: int, *, cut: bool = False) -> str:
    return text[:limit] + "…" if cut or len(text) > limit else text


def looks_random(token: str) -> bool:
    """A long token whose characters are spread like a key's, not like a word's (entropy per character)."""
    n = len(token)
    if n < 20:
        return False
    counts = Counter(token)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    if all(ch in _HEX for ch in token):
        return entropy > 3.0  # hex keys, digests, long numbers
    classes = sum((any(ch.islower() for ch in token), any(ch.isupper() for ch in token),
                   any(ch.isdigit() for ch in token)))
    if classes < 2:
        return False  # one case and no digits: words joined by _ - . (identifiers, paths)
    return entropy >= min(4.2, 0.85 * math.log2(min(n, 64)))


def _mask_random(match: re.Match[str]) -> str:
    token = match.group(0)
    # A known credential shape (redact's patterns: ghp_…, sk-…, AKIA…) is masked whatever its entropy:
    # the entropy rule alone lets through the rare random key whose characters happen to repeat.
    return MASK if looks_random(token) or redact(token) != token else token
