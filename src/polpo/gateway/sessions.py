"""What a turn does to the person's chat session, applied with its reply.

A session (:mod:`polpo.store.sessions`) holds the chat agent's history and a
pending question (e.g. the reason ``/reject`` asked for). It ends after
``sessionIdleMinutes`` without a message, or on ``/new``. Changes a command
makes (:class:`SessionChanges`) are applied in the same transaction that
records its reply, so a crash never leaves a reset without its "new
conversation" answer or vice versa. Only the conversation keeps a session
alive: a command that leaves it alone (``/status``, ``/tasks``) is not
activity, and costs no session write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polpo.store import sessions as store
from polpo.store.connection import Connection
from polpo.store.sessions import Session, open_session

__all__ = ["Session", "SessionChanges", "open_session"]

_UNSET: Any = object()


@dataclass
class SessionChanges:
    """What a turn does to the session; implements the commands' ``SessionOps``."""

    reset_requested: bool = False
    pending: Any = field(default=_UNSET)
    history: list[Any] | None = None

    async def reset(self) -> None:
        self.reset_requested = True
        self.history = None
        self.pending = _UNSET

    async def set_pending(self, pending: dict[str, Any] | None) -> None:
        self.pending = pending

    @property
    def touched(self) -> bool:
        """Whether the turn changes the session at all (a ``/status`` does not)."""
        return self.reset_requested or self.pending is not _UNSET or self.history is not None

    async def apply(
        self,
        conn: Connection,
        canonical: str,
        now: float,
        idle_seconds: float,
        session: Session | None = None,
    ) -> None:
        """Write the changes; also counts as activity (the idle clock restarts). A turn
        that changes nothing writes nothing: a command that does not use the
        conversation does not keep it alive either."""
        if not self.touched:
            return
        if self.reset_requested:
            await store.end_sessions(conn, canonical, now)
            if self.pending is not _UNSET and self.pending is not None:
                # a command that reset and then asked a question: keep the question
                await store.insert(conn, canonical, now, [], self.pending)
            return
        values: dict[str, Any] = {"last_active_at": now}
        if self.history is not None:
            values["history"] = self.history
        if self.pending is not _UNSET:
            values["pending"] = self.pending
        if session is not None:
            await store.save(conn, session.id, values)
            return
        if not await store.save_active(conn, canonical, now - idle_seconds, values):
            await store.end_sessions(conn, canonical, now)
            pending = self.pending if self.pending is not _UNSET else None
            await store.insert(conn, canonical, now, self.history or [], pending)
