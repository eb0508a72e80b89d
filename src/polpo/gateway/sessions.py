"""Chat sessions: one open session per canonical peer, in the ``sessions`` table.

A session holds the chat agent's history and a pending question (e.g. the
reason ``/reject`` asked for). It ends after ``sessionIdleMinutes`` without a
message, or on ``/new``. Changes a command makes (:class:`SessionChanges`)
are applied in the same transaction that records its reply, so a crash
never leaves a reset without its "new conversation" answer or vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from polpo.ids import new_id
from polpo.store.tables import sessions

# Built once: constructing SQLAlchemy statements costs more than running them.
_OPEN = (
    sa.select(sessions.c.id, sessions.c.last_active_at, sessions.c.history, sessions.c.pending)
    .where(sessions.c.peer_id == sa.bindparam("peer"), sessions.c.ended_at.is_(None))
    .order_by(sessions.c.last_active_at.desc())
)
_BY_ID = sessions.update().where(sessions.c.id == sa.bindparam("sid"))
_ACTIVE = sessions.update().where(
    sessions.c.peer_id == sa.bindparam("peer"),
    sessions.c.ended_at.is_(None),
    sessions.c.last_active_at > sa.bindparam("since"),
)
_INSERT = sessions.insert()


@dataclass
class Session:
    id: str
    history: list[Any]
    pending: dict[str, Any] | None


def open_session(conn: sa.Connection, canonical: str, now: float, idle_seconds: float) -> Session:
    """The peer's open session; a new one if there is none or it has been idle too long."""
    row = conn.execute(_OPEN, {"peer": canonical}).first()
    if row is not None and now - row.last_active_at < idle_seconds:
        history = row.history if isinstance(row.history, list) else []
        pending = row.pending if isinstance(row.pending, dict) else None
        return Session(row.id, history, pending)
    if row is not None:
        end_sessions(conn, canonical, now)
    sid = _insert(conn, canonical, now, [], None)
    return Session(sid, [], None)


def end_sessions(conn: sa.Connection, canonical: str, now: float) -> None:
    conn.execute(
        sessions.update()
        .where(sessions.c.peer_id == canonical, sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


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

    def apply(
        self,
        conn: sa.Connection,
        canonical: str,
        now: float,
        idle_seconds: float,
        session: Session | None = None,
    ) -> None:
        """Write the changes; also counts as activity (the idle clock restarts)."""
        if self.reset_requested:
            end_sessions(conn, canonical, now)
            if self.pending is not _UNSET and self.pending is not None:
                # a command that reset and then asked a question: keep the question
                _insert(conn, canonical, now, [], self.pending)
            return
        values: dict[str, Any] = {"last_active_at": now}
        if self.history is not None:
            values["history"] = self.history
        if self.pending is not _UNSET:
            values["pending"] = self.pending
        if session is not None:
            conn.execute(_BY_ID, {"sid": session.id, **values})
            return
        res = conn.execute(_ACTIVE, {"peer": canonical, "since": now - idle_seconds, **values})
        if res.rowcount == 0:
            end_sessions(conn, canonical, now)
            pending = self.pending if self.pending is not _UNSET else None
            _insert(conn, canonical, now, self.history or [], pending)


def _insert(
    conn: sa.Connection,
    canonical: str,
    now: float,
    history: list[Any],
    pending: dict[str, Any] | None,
) -> str:
    sid = new_id()
    conn.execute(
        _INSERT,
        {
            "id": sid,
            "peer_id": canonical,
            "created_at": now,
            "last_active_at": now,
            "history": history,
            "pending": pending,
        },
    )
    return sid
