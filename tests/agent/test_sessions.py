"""Sessions on SQLite: ownership (a reused id from another user is refused), pairing, folding past the budget."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sophia_agent.sessions import (
    SESSION_REFUSED,
    SessionMessage,
    SessionRefused,
    SessionSettings,
    SessionStore,
    ToolCallRecord,
)
from sophia_shared.auth import Principal, Role
from sophia_shared.errors import ErrorCode, InvalidArgument

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", Role.DEVELOPER)
BOB = Principal("bob", Role.DEVELOPER)


def _settings(tmp_path: Path, budget: int = 10_000) -> SessionSettings:
    return SessionSettings(dsn=f"sqlite://{tmp_path / 'sessions.db'}", window_token_budget=budget)


async def test_reused_id_from_another_user_is_refused(tmp_path: Path) -> None:
    store = await SessionStore.open_store(_settings(tmp_path))
    try:
        with anyio.fail_after(10):
            mine = await store.open(ALICE, "chat-1")
            await mine.append(SessionMessage(role="user", text="alice's secret"))
            with pytest.raises(SessionRefused) as refused:
                await store.open(BOB, "chat-1")
            assert refused.value.code is ErrorCode.FORBIDDEN
            assert refused.value.data == {"reason": SESSION_REFUSED}
            again = await store.open(ALICE, "chat-1")
            assert [m.text for m in (await again.window()).messages] == ["alice's secret"]
    finally:
        await store.close()


async def test_tool_results_must_answer_open_calls(tmp_path: Path) -> None:
    store = await SessionStore.open_store(_settings(tmp_path))
    try:
        with anyio.fail_after(10):
            session = await store.open(ALICE, "s")
            call = ToolCallRecord(id="c1", name="docker_list", arguments={})
            await session.append(SessionMessage(role="user", text="list"),
                                 SessionMessage(role="assistant", tool_calls=(call,)))
            with pytest.raises(InvalidArgument):
                await session.append(SessionMessage(role="user", text="too soon"))
            with pytest.raises(InvalidArgument):
                await session.append(SessionMessage(role="tool", tool_call_id="nope", text="x"))
            await session.append(SessionMessage(role="tool", tool_call_id="c1", tool_name="docker_list", text="[]"))
            assert len((await session.window()).messages) == 3
    finally:
        await store.close()


async def test_past_the_budget_old_turns_are_summarised_in_pairs(tmp_path: Path) -> None:
    store = await SessionStore.open_store(_settings(tmp_path, budget=120))
    try:
        with anyio.fail_after(10):
            session = await store.open(ALICE, "long")
            for turn in range(8):
                call = ToolCallRecord(id=f"c{turn}", name="lookup", arguments={"n": turn})
                await session.append(
                    SessionMessage(role="user", text=f"question number {turn} " + "word " * 20),
                    SessionMessage(role="assistant", tool_calls=(call,)),
                    SessionMessage(role="tool", tool_call_id=f"c{turn}", tool_name="lookup", text=f"answer {turn}"),
                )
            window = await session.window()
            assert "question number 0" in window.summary
            assert window.messages[0].role == "user"
            assert window.messages[-1].text == "answer 7"
            calls = {c.id for m in window.messages for c in m.tool_calls}
            results = {m.tool_call_id for m in window.messages if m.role == "tool"}
            assert calls == results
    finally:
        await store.close()
