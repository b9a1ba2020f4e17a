"""The conversation window: pairing rules, the token budget, and which turns to summarise.

A turn starts at a user message and holds everything up to the next one (assistant messages, their
tool calls, the tool results), so folding whole turns never splits a tool call from its result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sophia_shared.errors import InvalidArgument

from .messages import SessionMessage, estimate_tokens

# (previous summary, the oldest turns being folded) -> the new summary. A model-backed one may be
# passed by the agent; the default is extractive, deterministic and offline.
Summariser = Callable[[str, Sequence[SessionMessage]], Awaitable[str]]


@dataclass(frozen=True)
class Window:
    """What the agent shows the model of a session: the summary of folded turns, then the recent messages."""

    summary: str
    messages: tuple[SessionMessage, ...]

    def tokens(self) -> int:
        return len(self.summary) // 4 + sum(estimate_tokens(m) for m in self.messages)


def open_calls(messages: Sequence[SessionMessage]) -> set[str]:
    """Tool call ids made in `messages` whose result has not arrived yet."""
    pending: set[str] = set()
    for message in messages:
        if message.role == "assistant":
            pending.update(call.id for call in message.tool_calls)
        elif message.role == "tool" and message.tool_call_id is not None:
            pending.discard(message.tool_call_id)
    return pending


def check_append(existing: Sequence[SessionMessage], new: Sequence[SessionMessage], *, max_chars: int,
                 max_calls: int) -> None:
    """invalid_argument unless `new` may follow `existing`: every tool result answers an open call,
    nothing but results while calls are open, sizes within their settings. Checks all before any write."""
    pending = open_calls(existing)
    for message in new:
        if message.size_chars() > max_chars:
            raise InvalidArgument(f"a {message.role} message is over SOPHIA_SESSIONS_MAX_MESSAGE_CHARS ({max_chars})")
        if len(message.tool_calls) > max_calls:
            raise InvalidArgument(f"a message makes more than {max_calls} tool calls")
        if message.tool_calls and message.role != "assistant":
            raise InvalidArgument("only an assistant message may make tool calls")
        if message.role == "tool":
            if message.tool_call_id not in pending:
                raise InvalidArgument(f"tool result {str(message.tool_call_id)[:64]!r} answers no open tool call")
            pending.discard(message.tool_call_id)
            continue
        if pending:
            raise InvalidArgument(f"{len(pending)} tool call(s) need their results before a {message.role} message")
        ids = [call.id for call in message.tool_calls]
        if len(set(ids)) != len(ids):
            raise InvalidArgument("tool call ids repeat within one message")
        pending.update(ids)


def turn_starts(messages: Sequence[SessionMessage]) -> list[int]:
    """Indexes where a turn starts: each user message (and 0, for a window that starts mid-turn)."""
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    return starts if starts and starts[0] == 0 else [0, *starts]


def fold_point(summary: str, messages: Sequence[SessionMessage], budget: int) -> int:
    """How many of the oldest messages to summarise so the window fits `budget` (0: none).

    Whole turns only, never the newest turn nor one whose tool calls are still open. Over budget with
    nothing foldable, the window stays over budget rather than losing or splitting a turn.
    """
    if Window(summary, tuple(messages)).tokens() <= budget:
        return 0
    costs = [estimate_tokens(m) for m in messages]
    total = len(summary) // 4 + sum(costs)
    cut = 0
    for start in turn_starts(messages)[1:]:
        if total <= budget:
            break
        total -= sum(costs[cut:start])
        cut = start
    return cut


def _line(message: SessionMessage, width: int) -> str:
    text = " ".join(message.text.split())
    first = text.split(". ", 1)[0]
    clipped = first if len(first) <= width else first[: width - 1] + "…"
    if message.role == "tool":
        status = "failed" if message.is_error else "returned"
        return f"- tool {message.tool_name or message.tool_call_id} {status}: {clipped}"
    calls = ", ".join(call.name for call in message.tool_calls)
    said = f"{message.role}: {clipped}" if clipped else message.role
    return f"- {said}" + (f" [called {calls}]" if calls else "")


def extractive_summariser(max_chars: int = 4_000, line_width: int = 160) -> Summariser:
    """The default summariser: one line per folded message (its first sentence, clipped), appended to the
    previous summary; past `max_chars` the oldest lines give way, and the summary says how many did."""

    async def summarise(previous: str, turns: Sequence[SessionMessage]) -> str:
        lines = [ln for ln in previous.splitlines() if ln and not ln.startswith("(")]
        condensed = _condensed(previous)
        lines.extend(_line(m, line_width) for m in turns)
        while lines and sum(len(ln) + 1 for ln in lines) + 48 > max_chars:
            lines.pop(0)
            condensed += 1
        head = [f"({condensed} earlier lines condensed away)"] if condensed else []
        return "\n".join(head + lines)

    return summarise


def _condensed(summary: str) -> int:
    first = summary.split("\n", 1)[0]
    if first.startswith("(") and first.endswith(" earlier lines condensed away)"):
        count = first[1:].split(" ", 1)[0]
        return int(count) if count.isdigit() else 0
    return 0
