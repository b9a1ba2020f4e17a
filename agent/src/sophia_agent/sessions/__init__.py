"""Sessions and memory for the agent: one user's conversation window (short-term) and their share of
the memory store (long-term).

    store = await SessionStore.open_store(load_settings(SessionSettings))
    session = await store.open(principal, "chat-1")       # another user's id: SessionRefused
    await session.append(SessionMessage(role="user", text="…"))
    window = await session.window()                       # summary + recent messages
    memory = LongTermMemory(memory_store, principal)
    hits = await memory.recall("…")
"""

from .errors import SESSION_REFUSED, SessionRefused
from .longterm import LongTermMemory, SpaceResolver
from .messages import SessionMessage, ToolCallRecord, estimate_tokens
from .settings import SessionSettings
from .store import Session, SessionStore, check_session_id
from .window import Summariser, Window, extractive_summariser

__all__ = [
    "SESSION_REFUSED",
    "LongTermMemory",
    "Session",
    "SessionMessage",
    "SessionRefused",
    "SessionSettings",
    "SessionStore",
    "SpaceResolver",
    "Summariser",
    "ToolCallRecord",
    "Window",
    "check_session_id",
    "estimate_tokens",
    "extractive_summariser",
]
