"""Chat sessions: one open session per canonical peer, in the ``sessions`` table.

Reading the open session and saving a turn's changes run for every chat
message, so they are :class:`~polpo.store.hot.Hot` (history and pending are
JSON, converted explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from polpo.ids import new_id
from polpo.store.connection import Connection
from polpo.store.hot import Hot, json_text, json_value
from polpo.store.tables import sessions


@dataclass
class Session:
    id: str
    history: list[Any]
    pending: dict[str, Any] | None


_OPEN = Hot(
    sa.select(sessions.c.id, sessions.c.last_active_at, sessions.c.history, sessions.c.pending)
    .where(sessions.c.peer_id == sa.bindparam("peer"), sessions.c.ended_at.is_(None))
    .order_by(sessions.c.last_active_at.desc())
    .limit(1),
    ("peer",),
    columns={2: json_value, 3: json_value},
)
_INSERT = Hot(
    sessions.insert(),
    ("id", "peer_id", "created_at", "last_active_at", "history", "pending"),
    convert={"history": json_text, "pending": json_text},
)
#: a turn's save, by which values it sets (JSON ones converted)
_SAVE: dict[tuple[str, ...], Hot] = {}
_JSON = {"history": json_text, "pending": json_text}


async def open_session(
    conn: Connection, canonical: str, now: float, idle_seconds: float
) -> Session:
    """The peer's open session; a new one if there is none or it has been idle too long."""
    row = (await _OPEN.run(conn, {"peer": canonical})).first()
    if row is not None and now - row[1] < idle_seconds:
        history = row[2] if isinstance(row[2], list) else []
        pending = row[3] if isinstance(row[3], dict) else None
        return Session(row[0], history, pending)
    if row is not None:
        await end_sessions(conn, canonical, now)
    sid = await insert(conn, canonical, now, [], None)
    return Session(sid, [], None)


async def end_sessions(conn: Connection, canonical: str, now: float) -> None:
    await conn.execute(
        sessions.update()
        .where(sessions.c.peer_id == canonical, sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


async def insert(
    conn: Connection,
    canonical: str,
    now: float,
    history: list[Any],
    pending: dict[str, Any] | None,
) -> str:
    sid = new_id()
    await _INSERT.run(
        conn,
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


async def save(conn: Connection, session_id: str, values: dict[str, Any]) -> None:
    """Set ``values`` (``last_active_at``, ``history``, ``pending``) on one session."""
    key = tuple(sorted(values))
    hot = _SAVE.get(key)
    if hot is None:
        hot = _SAVE[key] = Hot(
            sessions.update().where(sessions.c.id == sa.bindparam("sid")),
            ("sid", *key),
            convert={k: _JSON[k] for k in key if k in _JSON},
            listed=False,
        )
    await hot.run(conn, {"sid": session_id, **values})


async def save_active(
    conn: Connection, canonical: str, since: float, values: dict[str, Any]
) -> bool:
    """Set ``values`` on the peer's open session if it was active after ``since``;
    False if there is none."""
    res = await conn.execute(
        sessions.update()
        .where(
            sessions.c.peer_id == canonical,
            sessions.c.ended_at.is_(None),
            sessions.c.last_active_at > since,
        )
        .values(**values)
    )
    return bool(res.rowcount)
