"""Recognising Polpo's own messages when a channel shows them back (SPEC §3, §12).

On WhatsApp the owner's "message yourself" chat is the admin console, and
every message Polpo sends there comes back as a message "from me". Such an
echo must never be input — least of all a command: a reply part that quotes
``/approve K7M2`` would otherwise approve it. Every part's channel message
id is stored durably in ``outbox_parts`` (when the channel mints ids, before
the part is even sent), so echoes are recognised across restarts; rows from
before that table existed still have their first part's id in
``outbox.channel_message_id``.
"""

from __future__ import annotations

import sqlalchemy as sa

from polpo.store.tables import outbox, outbox_parts

_PART = sa.select(outbox_parts.c.outbox_id).where(
    outbox_parts.c.channel == sa.bindparam("channel"),
    outbox_parts.c.message_id == sa.bindparam("mid"),
)
_FIRST = sa.select(outbox.c.id).where(
    outbox.c.channel == sa.bindparam("channel"),
    outbox.c.channel_message_id == sa.bindparam("mid"),
)


def is_own_message(conn: sa.Connection, channel: str, message_id: str) -> bool:
    """Did Polpo send the message ``message_id`` on ``channel`` (any part of any reply)?"""
    params = {"channel": channel, "mid": message_id}
    if conn.execute(_PART, params).first() is not None:
        return True
    return conn.execute(_FIRST, params).first() is not None
