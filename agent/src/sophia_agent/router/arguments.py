"""Arguments read from the sentence by each parameter's JSON schema; what cannot be read is left out.

Only values the sentence states are taken: quoted strings, ids and names after the word that names
the parameter ("container api", "stack prod", "named cache"), numbers, enum values, e-mail
addresses, dates, SQL. A required parameter with no such value is reported missing, never guessed.
Every scan is one pass over the (already length-capped) sentence per parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .text import STOP_WORDS, identifier_words, stem
from .tools import RoutableTool

_QUOTED = re.compile(r"\"([^\"]{1,500})\"|'([^']{1,500})'|`([^`]{1,500})`")
_TOKEN = re.compile(r"[\w@:/+~-]+(?:\.[\w@:/+~-]+)*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?Z?)?\b")
_SQL = re.compile(r"\b(select|with|insert|update|delete|merge|create|drop|alter|show|describe|explain)\b.*",
                  re.IGNORECASE | re.DOTALL)
_LINKS = frozenset({"id", "named", "called", "is", "=", ":", "of", "the", "uuid", "name"})
_COMMON_BEFORE = frozenset({"new", "old", "running", "stopped", "every", "each", "first", "last", "that", "docker",
                            "retool", "gong", "snowflake", "pulumi", "sophia", "local", "whole", "same", "other"})
_RELATIVE_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
_MAX_PATTERN = 500


def schema_types(spec: Mapping[str, Any]) -> set[str]:
    """The JSON types a parameter allows (BFCL's "dict"/"float" spellings folded in)."""
    found: set[str] = set()
    raw = spec.get("type")
    for value in raw if isinstance(raw, list) else [raw]:
        if isinstance(value, str):
            found.add({"dict": "object", "float": "number", "int": "integer", "bool": "boolean",
                       "str": "string", "list": "array", "tuple": "array"}.get(value, value))
    for option in spec.get("anyOf") or spec.get("oneOf") or []:
        if isinstance(option, Mapping):
            found |= schema_types(option)
    return found - {"null"}


class Sentence:
    """A sentence prepared once for every parameter of a tool."""

    def __init__(self, text: str, today: dt.date, vocabulary: frozenset[str] = frozenset()):
        self.text = text
        # The tool's own words: "preview the stack update" names no stack called "update".
        self.vocabulary = vocabulary
        self.lower = text.lower()
        self.today = today
        quotes = list(_QUOTED.finditer(text))
        self.quoted = [next(g for g in m.groups() if g is not None) for m in quotes]
        # Where each quote sits: after how many bare tokens ("the item "db"" -> after "item", token 3).
        self.quoted_after = [len(_TOKEN.findall(_QUOTED.sub(" ", text[: m.start()]))) for m in quotes]
        bare = _QUOTED.sub(" ", text)
        self.tokens: list[str] = _TOKEN.findall(bare)
        self.stems = [stem(t.lower()) for t in self.tokens]


def fill(tool: RoutableTool, text: str, *, today: dt.date | None = None) -> tuple[dict[str, Any], list[str]]:
    """The arguments `text` gives for `tool`, and the required parameters it does not give."""
    vocabulary = frozenset(stem(w) for w in identifier_words(f"{tool.name} {tool.description} {tool.parameter_text()}"))
    sentence = Sentence(text, today or dt.date.today(), vocabulary)
    arguments: dict[str, Any] = {}
    used_quotes: set[int] = set()
    nouns = [stem(w) for w in identifier_words(tool.name)]
    for name, spec in tool.properties.items():
        value = _value_for(name, spec, sentence, used_quotes, nouns)
        if value is not None and _valid(value, spec):
            arguments[name] = value
    missing = [name for name in tool.required if name not in arguments]
    return arguments, missing


def _value_for(name: str, spec: Mapping[str, Any], sentence: Sentence, used_quotes: set[int],
               nouns: list[str]) -> Any:
    types = schema_types(spec)
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return _enum_value(enum, sentence)
    # A bare `id` (or `name`) is the id of what the tool is about: "memory 42" for memory_delete.
    words = [stem(w) for w in identifier_words(name) if w not in ("id", "ids", "name", "uuid")] or nouns
    description = str(spec.get("description") or "").lower()
    if types & {"integer", "number"} and not types & {"string"}:
        return _number_after(words, sentence, integer="number" not in types)
    if types and not types & {"string"}:
        return None  # booleans, objects and arrays are not read from free text
    fmt = str(spec.get("format") or "")
    if fmt == "email" or "email" in name.lower() or "e-mail" in description:
        match = _EMAIL.search(sentence.text)
        return match.group(0) if match else None
    if fmt in ("date", "date-time") or "date" in words:
        return _date_value(sentence)
    if name.lower() == "sql" or "sql" in description.split():
        return _sql_value(sentence, used_quotes)
    quoted = _quote_after(words, sentence, used_quotes)
    if quoted is None and _takes_free_text(name):
        quoted = _unused_quote(sentence, used_quotes)
    return quoted if quoted is not None else _word_after(words, sentence)


def _takes_free_text(name: str) -> bool:
    return any(w in ("query", "text", "command", "content", "message", "note", "q", "prompt", "title")
               for w in identifier_words(name))


def _enum_value(enum: list[Any], sentence: Sentence) -> Any:
    best: Any = None
    for option in enum:
        if not isinstance(option, str) or not option or (best is not None and len(option) <= len(best)):
            continue
        if re.search(rf"(?<!\w){re.escape(option.lower())}(?!\w)", sentence.lower):
            best = option
    return best


def _number_after(words: list[str], sentence: Sentence, *, integer: bool) -> int | float | None:
    for position in _mentions(words, sentence):
        for token in sentence.tokens[position + 1 : position + 4]:
            if _NUMBER.fullmatch(token):
                return int(token) if integer and "." not in token else float(token)
    return None


def _mentions(words: list[str], sentence: Sentence) -> list[int]:
    return [i for i, s in enumerate(sentence.stems) if s in words]


def _word_after(words: list[str], sentence: Sentence) -> str | None:
    """The value following the word that names the parameter: "container api", "stack prod", "named x"."""
    for position in _mentions(words, sentence):
        for token in sentence.tokens[position + 1 : position + 3]:
            if token.lower() in _LINKS or token.lower() in STOP_WORDS:
                continue
            if stem(token.lower()) in words or stem(token.lower()) in sentence.vocabulary:
                break
            return token
    for i, token in enumerate(sentence.tokens[:-1]):
        if token.lower() in ("named", "called"):
            return sentence.tokens[i + 1]
    for position in _mentions(words, sentence):
        # "the api container": the word before the noun, when it is not a common word.
        before = sentence.tokens[position - 1] if position else ""
        if before and not _is_common(before) and stem(before.lower()) not in sentence.vocabulary:
            return before
    return None


def _is_common(token: str) -> bool:
    lower = token.lower()
    return lower in STOP_WORDS or lower in _LINKS or lower in _COMMON_BEFORE or lower.endswith("ed")


def _quote_after(words: list[str], sentence: Sentence, used: set[int]) -> str | None:
    """A quote right after the word that names the parameter (a link word between allowed): "item "db""."""
    for position in _mentions(words, sentence):
        follows = position + 1
        while follows < len(sentence.tokens) and sentence.tokens[follows].lower() in _LINKS:
            follows += 1
        for i, after in enumerate(sentence.quoted_after):
            if i not in used and after == follows:
                used.add(i)
                return sentence.quoted[i]
    return None


def _unused_quote(sentence: Sentence, used: set[int]) -> str | None:
    for i, text in enumerate(sentence.quoted):
        if i not in used:
            used.add(i)
            return text
    return None


def _sql_value(sentence: Sentence, used: set[int]) -> str | None:
    for i, text in enumerate(sentence.quoted):
        if i not in used and _SQL.match(text.strip()):
            used.add(i)
            return text.strip()
    match = _SQL.search(sentence.text)
    return match.group(0).strip() if match else None


def _date_value(sentence: Sentence) -> str | None:
    match = _ISO_DATE.search(sentence.text)
    if match:
        return match.group(0)
    for word, days in _RELATIVE_DAYS.items():
        if re.search(rf"\b{word}\b", sentence.lower):
            return (sentence.today + dt.timedelta(days=days)).isoformat()
    return None


def _valid(value: Any, spec: Mapping[str, Any]) -> bool:
    """The schema's own bounds: a value outside them is not taken (and a required one stays missing)."""
    if isinstance(value, str):
        if len(value) > int(spec.get("maxLength") or 10_000) or len(value) < int(spec.get("minLength") or 0):
            return False
        pattern = spec.get("pattern")
        if isinstance(pattern, str) and len(pattern) <= _MAX_PATTERN:
            try:
                return re.search(pattern, value) is not None
            except re.error:
                return True
        return True
    if isinstance(value, (int, float)):
        low, high = spec.get("minimum"), spec.get("maximum")
        too_low = isinstance(low, (int, float)) and value < low
        return not (too_low or (isinstance(high, (int, float)) and value > high))
    return True
