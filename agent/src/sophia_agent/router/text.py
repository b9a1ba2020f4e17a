"""Words of a sentence or a tool: identifier splitting, light stemming, stop words; linear in the text."""

from __future__ import annotations

import re

# Runs of letters or digits; camelCase and snake_case identifiers are split into their words.
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
STOP_WORDS = frozenset({
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "does", "doing", "for", "from", "get", "give", "had", "has", "have", "he", "her", "here",
    "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "let", "like", "me", "more", "most",
    "my", "need", "no", "not", "now", "of", "on", "one", "or", "our", "out", "please", "she", "should", "show",
    "so", "some", "such", "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "up", "us", "use", "using", "want", "was", "we", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "would", "you", "your", "tool", "tools", "i'd", "i'm"
})
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


def identifier_words(text: str) -> list[str]:
    """Lower-cased words of `text`, splitting camelCase, snake_case and dotted identifiers."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if token.islower() or token.isdigit():
            out.append(token)
        else:
            out.extend(part.lower() for part in _CAMEL.findall(token))
    return out


def stem(word: str) -> str:
    """Fold common English suffixes so that "containers", "running" and "stopped" meet their stems."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                return base[:-1]  # "running" -> "run", "stopped" -> "stop"
            return base
    return word


def terms(text: str) -> list[str]:
    """The searchable terms of `text`: identifier words without stop words, stemmed."""
    return [stem(w) for w in identifier_words(text) if len(w) > 1 and not w.isdigit() and w not in STOP_WORDS]
