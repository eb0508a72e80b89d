"""The durable outbox: replies and alerts are rows first and network sends second.

A send that fails or a channel that is down leaves the row pending, and the
gateway's outbox dispatcher delivers it later, in order per chat.
``dedupe_key`` makes enqueueing idempotent (one row per inbound message, per
event and recipient): the insert is ``ON CONFLICT DO NOTHING``, so a crash
and a replay — or two processes at once — never produce a second message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from polpo.store.connection import Connection
from polpo.store.engine import insert_ignore
from polpo.store.hot import Hot, json_text
from polpo.store.tables import inbox, outbox, outbox_parts

_ENQUEUE_PARAMS = (
    "channel",
    "chat_id",
    "peer_id",
    "text",
    "inbox_id",
    "ref",
    "dedupe_key",
    "buttons",
    "owner",
    "parts_sent",
    "status",
    "attempts",
    "created_at",
)
_ENQUEUE = Hot(
    sqlite.insert(outbox).on_conflict_do_nothing().returning(outbox.c.id),
    _ENQUEUE_PARAMS,
    convert={"buttons": json_text},
    pg=lambda: insert_ignore("postgresql", outbox).returning(outbox.c.id),
)


async def enqueue(
    conn: Connection,
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
    found = await _ENQUEUE.run(
        conn,
        {
            "channel": channel,
            "chat_id": chat_id,
            "peer_id": peer_id,
            "text": text,
            "inbox_id": inbox_id,
            "ref": ref,
            "dedupe_key": dedupe_key,
            "buttons": buttons,
            "owner": owner,
            "parts_sent": 0,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        },
    )
    row = found.first()
    return None if row is None else int(row[0])


# -- the dispatcher's reads and writes ------------------------------------------------


@dataclass(frozen=True)
class PendingRow:
    """An outbox row waiting to be sent (or to be sent further)."""

    id: int
    chat_id: str
    text: str
    buttons: Any
    parts_sent: int
    attempts: int
    next_attempt_at: float | None
    channel_message_id: str | None
    error: str | None
    #: the message this row answers (its channel message id): the reply quotes it
    reply_to: str | None = None
    #: message ids assigned to parts not yet confirmed sent (``outbox_parts`` "sending")
    assigned: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentPart:
    """One part that went out, with its channel message id."""

    n: int
    message_id: str | None
    #: its id was assigned (and stored "sending") before the send
    assigned: bool


def _owner_match(owner: str | None) -> Any:
    return outbox.c.owner.is_(None) if owner is None else outbox.c.owner == owner


_PENDING = {
    owned: sa.select(
        outbox.c.id,
        outbox.c.chat_id,
        outbox.c.text,
        outbox.c.buttons,
        outbox.c.parts_sent,
        outbox.c.attempts,
        outbox.c.next_attempt_at,
        outbox.c.channel_message_id,
        outbox.c.error,
        sa.select(inbox.c.message_id).where(inbox.c.id == outbox.c.inbox_id).scalar_subquery(),
    )
    .where(
        outbox.c.channel == sa.bindparam("channel"),
        outbox.c.status == "pending",
        outbox.c.owner.is_(None) if not owned else outbox.c.owner == sa.bindparam("owner"),
    )
    .order_by(outbox.c.id)
    .limit(sa.bindparam("page"))
    for owned in (False, True)
}
_ASSIGNED = sa.select(
    outbox_parts.c.outbox_id, outbox_parts.c.part, outbox_parts.c.message_id
).where(
    outbox_parts.c.outbox_id >= sa.bindparam("first"),
    outbox_parts.c.outbox_id <= sa.bindparam("last"),
    outbox_parts.c.channel == sa.bindparam("channel"),
    outbox_parts.c.status == "sending",
    outbox_parts.c.message_id.is_not(None),
)


async def pending(
    conn: Connection, channel: str, owner: str | None, page: int, *, mints: bool = False
) -> list[PendingRow]:
    """The first ``page`` pending rows of ``channel`` that ``owner`` sends, oldest first;
    with ``mints``, the ids an unfinished attempt assigned to their parts."""
    params: dict[str, Any] = {"channel": channel, "page": page}
    if owner is not None:
        params["owner"] = owner
    rows = [PendingRow(*r) for r in (await conn.execute(_PENDING[owner is not None], params))]
    if not rows or not mints:
        return rows
    assigned: dict[int, dict[int, str]] = {}
    found = await conn.execute(
        _ASSIGNED, {"first": rows[0].id, "last": rows[-1].id, "channel": channel}
    )
    for outbox_id, n, mid in found:
        assigned.setdefault(int(outbox_id), {})[int(n)] = str(mid)
    if not assigned:
        return rows
    return [replace(r, assigned=assigned[r.id]) if r.id in assigned else r for r in rows]


async def clear_backoff(conn: Connection, channel: str, owner: str | None) -> None:
    """Every pending row of ``channel`` is due now (its channel came back)."""
    await conn.execute(
        outbox.update()
        .where(
            outbox.c.channel == channel,
            outbox.c.status == "pending",
            outbox.c.next_attempt_at.is_not(None),
            _owner_match(owner),
        )
        .values(next_attempt_at=None)
    )


_PART_INSERT = Hot(
    outbox_parts.insert(),
    ("outbox_id", "part", "channel", "message_id", "status", "created_at", "sent_at"),
)
_PART_SENT = Hot(
    outbox_parts.update()
    .where(
        outbox_parts.c.outbox_id == sa.bindparam("row"), outbox_parts.c.part == sa.bindparam("n")
    )
    .values(status="sent", sent_at=sa.bindparam("at"), message_id=sa.bindparam("mid")),
    ("row", "n", "at", "mid"),
)
_ATTEMPT = (
    outbox.update().where(outbox.c.id == sa.bindparam("row")).values(attempts=outbox.c.attempts + 1)
)
#: a row's update, by which columns it sets
_UPDATES: dict[tuple[str, ...], Hot] = {}


async def assign_part_ids(
    conn: Connection, row_id: int, channel: str, ids: Mapping[int, str], now: float
) -> None:
    """Ids chosen for parts before sending them: stored "sending", so a resend after a
    crash reuses them (and their echoes are known)."""
    for n, mid in ids.items():
        await _PART_INSERT.run(
            conn,
            {
                "outbox_id": row_id,
                "part": n,
                "channel": channel,
                "message_id": mid,
                "status": "sending",
                "created_at": now,
                "sent_at": None,
            },
        )


async def record(
    conn: Connection,
    row_id: int,
    channel: str,
    now: float,
    *,
    status: str | None = None,
    parts_sent: int | None = None,
    channel_message_id: str | None = None,
    sent: bool = False,
    error: str | None = None,
    attempt: bool = False,
    retry_in: float | None = None,
    part: SentPart | None = None,
) -> None:
    """What a send did to a row: a part out, all sent, a failure, a retry later."""
    if part is not None and part.message_id is not None:
        if part.assigned:
            await _PART_SENT.run(
                conn, {"row": row_id, "n": part.n, "at": now, "mid": part.message_id}
            )
        else:
            await _PART_INSERT.run(
                conn,
                {
                    "outbox_id": row_id,
                    "part": part.n,
                    "channel": channel,
                    "message_id": part.message_id,
                    "status": "sent",
                    "created_at": now,
                    "sent_at": now,
                },
            )
    values: dict[str, Any] = {}
    if status is not None:
        values["status"] = status
    if parts_sent is not None:
        values["parts_sent"] = parts_sent
    if channel_message_id is not None:
        values["channel_message_id"] = channel_message_id
    if sent:
        values["sent_at"] = now
        values["next_attempt_at"] = None
    if error is not None or status == "sent":
        values["error"] = error
    if attempt:
        await conn.execute(_ATTEMPT, {"row": row_id})
    if retry_in is not None:
        values["next_attempt_at"] = now + retry_in
    key = tuple(sorted(values))
    update = _UPDATES.get(key)
    if update is None:
        update = _UPDATES[key] = Hot(
            outbox.update().where(outbox.c.id == sa.bindparam("row")), ("row", *key), listed=False
        )
    await update.run(conn, {"row": row_id, **values})


_REF_OF = sa.select(outbox.c.ref).where(
    outbox.c.channel == sa.bindparam("channel"),
    outbox.c.channel_message_id == sa.bindparam("message_id"),
)
_SENT_PART = sa.select(outbox_parts.c.outbox_id).where(
    outbox_parts.c.channel == sa.bindparam("channel"),
    outbox_parts.c.message_id == sa.bindparam("message_id"),
)
_SENT_FIRST = sa.select(outbox.c.id).where(
    outbox.c.channel == sa.bindparam("channel"),
    outbox.c.channel_message_id == sa.bindparam("message_id"),
)


async def ref_of_sent(conn: Connection, channel: str, message_id: str) -> str | None:
    """The ``ref`` of the row whose first part went out as ``message_id`` (reactions)."""
    ref = await conn.scalar(_REF_OF, {"channel": channel, "message_id": message_id})
    return None if ref is None else str(ref)


async def was_sent_as(conn: Connection, channel: str, message_id: str) -> bool:
    """Did Polpo send the message ``message_id`` on ``channel`` (any part of any reply)?

    On WhatsApp every message Polpo sends to the owner's "message yourself"
    chat comes back as a message "from me"; such an echo must never be input.
    Every part's id is in ``outbox_parts`` (so echoes are recognised across
    restarts); rows from before that table still have their first part's id
    in ``outbox.channel_message_id``.
    """
    params = {"channel": channel, "message_id": message_id}
    if await conn.scalar(_SENT_PART, params) is not None:
        return True
    return await conn.scalar(_SENT_FIRST, params) is not None
