"""Who sent a message: the peer id, its durable record, and the person behind it.

A peer id is ``channel:externalId`` (SPEC §2). Linked peers (``peers.
linked_to``) are one person: the *canonical* peer is the one with
``linked_to`` NULL, and sessions and access are decided for the whole group.
A WhatsApp sender first seen by LID (``whatsapp:lid:…``) is merged into its
phone identity as soon as a message carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from polpo.channels.base import InboundMessage
from polpo.gateway.writes import execute
from polpo.peerid import PeerIdError, normalize_peer, whatsapp_lid_peer
from polpo.store.tables import allowlist, pairing_requests, peers, sessions


@dataclass(frozen=True)
class Identity:
    peer_id: str
    #: the person's canonical peer id (sessions are keyed by it)
    canonical: str
    #: every peer id of the person: the canonical one and all linked to it
    group: tuple[str, ...]


def peer_id_of(message: InboundMessage) -> str:
    """``whatsapp`` + ``39123456789`` → ``whatsapp:39123456789``.

    Raises :class:`PeerIdError` when the sender's id is not valid for its channel.
    """
    raw = message.peer.strip()
    if not raw or any(c.isspace() for c in raw) or len(raw) > 200:
        raise PeerIdError(f"not a peer id: {message.peer!r}")
    channel = message.channel
    if channel in ("whatsapp", "telegram", "memory"):
        return normalize_peer(f"{channel}:{raw}")
    if not channel or ":" in channel:
        raise PeerIdError(f"not a channel name: {channel!r}")
    return f"{channel}:{raw}"


# Built once: constructing SQLAlchemy statements costs more than running them.
_TOUCH_NAMED = (
    peers.update()
    .where(peers.c.id == sa.bindparam("pid"))
    .values(last_seen=sa.bindparam("now"), display_name=sa.bindparam("name"))
)
_TOUCH = (
    peers.update().where(peers.c.id == sa.bindparam("pid")).values(last_seen=sa.bindparam("now"))
)
_INSERT = peers.insert()
_GROUP = sa.select(peers.c.id, peers.c.linked_to).where(
    sa.or_(peers.c.id == sa.bindparam("pid"), peers.c.linked_to == sa.bindparam("pid"))
)


def touch_peer(
    conn: sa.Connection, peer_id: str, channel: str, display_name: str | None, now: float
) -> None:
    """Record that ``peer_id`` was seen now (created on first sight; name kept fresh)."""
    if display_name:
        res = execute(conn, _TOUCH_NAMED, {"pid": peer_id, "now": now, "name": display_name})
    else:
        res = execute(conn, _TOUCH, {"pid": peer_id, "now": now})
    if res.rowcount == 0:
        conn.execute(
            _INSERT,
            {
                "id": peer_id,
                "channel": channel,
                "display_name": display_name or None,
                "first_seen": now,
                "last_seen": now,
                "linked_to": None,
            },
        )


def resolve(conn: sa.Connection, peer_id: str) -> Identity:
    """The canonical peer and the whole linked group of ``peer_id``."""
    rows = execute(conn, _GROUP, {"pid": peer_id}).fetchall()
    linked = next((r[1] for r in rows if r[0] == peer_id), None)
    if linked:  # peer_id is linked to another: the group is that one's
        rows = execute(conn, _GROUP, {"pid": linked}).fetchall()
    canonical = linked or peer_id
    group = {canonical, peer_id, *(r[0] for r in rows)}
    return Identity(peer_id, canonical, tuple(sorted(group)))


def merge_lid(conn: sa.Connection, phone_peer: str, lid: str, now: float) -> bool:
    """Fold ``whatsapp:lid:<lid>`` into ``phone_peer`` (SPEC §2); True if something moved.

    The LID identity becomes linked to the phone one's canonical peer; its
    allowlist entry, pending pairing requests and open session move over.
    """
    try:
        lid_peer = whatsapp_lid_peer(lid)
    except PeerIdError:
        return False
    row = (
        conn.execute(sa.select(peers.c.id, peers.c.linked_to).where(peers.c.id == lid_peer))
    ).first()
    if row is None:
        return False
    target = (
        conn.execute(sa.select(peers.c.linked_to).where(peers.c.id == phone_peer))
    ).scalar() or phone_peer
    if row.linked_to == target or lid_peer == target:
        return False
    # the LID identity and anything linked to it now belong to the phone's person
    conn.execute(
        peers.update()
        .where(sa.or_(peers.c.id == lid_peer, peers.c.linked_to == lid_peer))
        .values(linked_to=target)
    )
    listed = (conn.execute(sa.select(allowlist).where(allowlist.c.peer_id == lid_peer))).first()
    if listed is not None:
        exists = (
            conn.execute(sa.select(allowlist.c.peer_id).where(allowlist.c.peer_id == target))
        ).first()
        if exists is None:
            conn.execute(
                allowlist.insert().values(
                    peer_id=target, added_by=listed.added_by, added_at=now, source=listed.source
                )
            )
    conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.peer_id == lid_peer, pairing_requests.c.status == "pending")
        .values(peer_id=target)
    )
    has_session = (
        conn.execute(
            sa.select(sessions.c.id).where(
                sessions.c.peer_id == target, sessions.c.ended_at.is_(None)
            )
        )
    ).first()
    if has_session is None:
        conn.execute(
            sessions.update()
            .where(sessions.c.peer_id == lid_peer, sessions.c.ended_at.is_(None))
            .values(peer_id=target)
        )
    return True
