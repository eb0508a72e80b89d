"""Enqueueing into the durable outbox.

Replies and alerts are rows first and network sends second: a send that fails
or a channel that is down leaves the row pending, and the gateway's outbox
dispatcher delivers it later, in order per chat. ``dedupe_key`` makes
enqueueing idempotent (one row per inbound message part, per event and
recipient), so a crash and a replay never produce a second message.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from polpo.store.engine import insert_ignore
from polpo.store.tables import outbox


async def enqueue(
    conn: AsyncConnection,
    *,
    channel: str,
    chat_id: str,
    text: str,
    now: float,
    peer_id: str | None = None,
    inbox_id: int | None = None,
    ref: str | None = None,
    dedupe_key: str | None = None,
    buttons: list[dict[str, str]] | None = None,
    owner: str | None = None,
) -> int | None:
    """Insert a pending outbox row; returns its id, or None if ``dedupe_key`` was already used.

    ``text`` is Markdown: the gateway's dispatcher formats and splits it for
    the channel when it sends. After the transaction commits, call
    ``app.outbox_ready.set()`` so a running dispatcher sends it now rather
    than at its next poll.
    """
    # ON CONFLICT DO NOTHING: two processes enqueueing one key at once both go on,
    # one row is stored (a SELECT first would let both insert, one failing)
    insert = outbox.insert() if dedupe_key is None else insert_ignore(conn.dialect.name, outbox)
    res = await conn.execute(
        insert.values(
            channel=channel,
            chat_id=chat_id,
            peer_id=peer_id,
            text=text,
            inbox_id=inbox_id,
            ref=ref,
            dedupe_key=dedupe_key,
            buttons=buttons,
            owner=owner,
            parts_sent=0,
            status="pending",
            attempts=0,
            created_at=now,
        ).returning(outbox.c.id)
    )
    row_id = res.scalar()
    return None if row_id is None else int(row_id)
