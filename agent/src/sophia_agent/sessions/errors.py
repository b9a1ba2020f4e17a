"""The sessions' errors, with stable codes (sophia_shared.errors)."""

from __future__ import annotations

from sophia_shared.errors import Forbidden

# The data tag of a refused session id: callers branch on it, not on the message.
SESSION_REFUSED = "session_refused"


class SessionRefused(Forbidden):
    """The session id cannot be used by this principal. Said the same way whether the id belongs to
    someone else or is unusable for any other reason, so a refusal reveals nothing more."""

    def __init__(self, session_id: str):
        super().__init__(
            f"session {session_id[:64]!r} cannot be used by you; start a new session with another id",
            data={"reason": SESSION_REFUSED},
        )
