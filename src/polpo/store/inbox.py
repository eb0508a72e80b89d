"""The durable inbox: every inbound message is a row before anything else happens.

A unique ``(channel, message_id)`` drops duplicates, also across restarts;
the insert is ``ON CONFLICT DO NOTHING``, so a duplicate returns no id. The
insert and the final mark run for every message: they are
:class:`~polpo.store.hot.Hot`. The text is stored once, in ``text``; the
``payload`` holds the message's other fields. A row of a sender who is not
admitted holds only what dedupe needs: its sender, chat, text and payload
are empty (:func:`forget`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from polpo.store.connection import Connection
from polpo.store.engine import insert_ignore
from polpo.store.hot import Hot, json_text
from polpo.store.tables import inbox

_INSERT = Hot(
    sqlite.insert(inbox).on_conflict_do_nothing().returning(inbox.c.id),
    (
        "channel",
        "message_id",
        "peer_id",
        "chat_id",
        "text",
        "payload",
        "sent_at",
        "received_at",
        "status",
        "outcome",
        "processed_at",
        "owner",
    ),
    convert={"payload": json_text, "sent_at": float},
    pg=lambda: insert_ignore("postgresql", inbox).returning(inbox.c.id),
)
_MARK = Hot(
    inbox.update().where(inbox.c.id == sa.bindparam("iid")),
    ("iid", "status", "outcome", "processed_at"),
)
_FORGET = Hot(
    inbox.update().where(inbox.c.id == sa.bindparam("iid")).values(peer_id="", chat_id="", text=""),
    ("iid", "status", "outcome", "processed_at", "payload"),
    convert={"payload": json_text},
)


async def insert(
    conn: Connection,
    *,
    channel: str,
    message_id: str,
    peer_id: str,
    chat_id: str,
    text: str,
    payload: dict[str, Any],
    sent_at: float,
    now: float,
    status: str,
    outcome: str | None,
    owner: str | None,
) -> int | None:
    """The new row's id, or None for a duplicate."""
    res = await _INSERT.run(
        conn,
        {
            "channel": channel,
            "message_id": message_id,
            "peer_id": peer_id,
            "chat_id": chat_id,
            "text": text,
            "payload": payload,
            "sent_at": sent_at,
            "received_at": now,
            "status": status,
            "outcome": outcome,
            "processed_at": now if status != "received" else None,
            "owner": owner,
        },
    )
    row = res.first()
    return None if row is None or row[0] is None else int(row[0])


async def mark(
    conn: Connection, inbox_id: int, status: str, outcome: str | None, now: float
) -> None:
    """The row leaves ``received``: done, ignored or failed, and why."""
    await _MARK.run(
        conn, {"iid": inbox_id, "status": status, "outcome": outcome, "processed_at": now}
    )


async def forget(
    conn: Connection, inbox_id: int, status: str, outcome: str | None, now: float
) -> None:
    """As :func:`mark`, and empty the row of all but what dedupe needs (its sender was
    not admitted after all: nothing of what they said is kept)."""
    await _FORGET.run(
        conn,
        {"iid": inbox_id, "status": status, "outcome": outcome, "processed_at": now, "payload": {}},
    )


async def unfinished(conn: Connection, owner: str | None) -> list[tuple[int, str, Any]]:
    """``(id, text, payload)`` of the rows of ``owner`` still ``received``, oldest first."""
    owner_match = inbox.c.owner.is_(None) if owner is None else inbox.c.owner == owner
    rows = (
        await conn.execute(
            sa.select(inbox.c.id, inbox.c.text, inbox.c.payload)
            .where(inbox.c.status == "received", owner_match)
            .order_by(inbox.c.id)
        )
    ).all()
    return [(int(r[0]), r[1], r[2]) for r in rows]
