"""Who sent a message: the peer id, its durable record, and the person behind it.

A peer id is ``channel:externalId`` (SPEC §2). Linked peers (``peers.
linked_to``) are one person (:mod:`polpo.core.linking`): sessions and access
are decided for the whole group. A WhatsApp sender first seen by LID
(``whatsapp:lid:…``) joins its phone identity's group as soon as a message
carries both — the same link as ``/link``, announced with ``peer:linked``.
"""

from __future__ import annotations

from polpo.channels.base import InboundMessage
from polpo.peerid import PeerIdError, normalize_peer, whatsapp_lid_peer
from polpo.store import peers as store
from polpo.store.peers import Group, group_of, touch
from polpo.store.tx import Tx

__all__ = ["Group", "group_of", "merge_lid", "peer_id_of", "touch"]


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


async def merge_lid(tx: Tx, phone_peer: str, lid: str) -> bool:
    """Link ``whatsapp:lid:<lid>`` (if ever admitted, allowed or waiting for a pairing
    code) into ``phone_peer``'s person (SPEC §2); True if something moved."""
    try:
        lid_peer = whatsapp_lid_peer(lid)
    except PeerIdError:
        return False
    if not await store.known(tx.conn, lid_peer):
        return False
    target = await store.canonical(tx.conn, phone_peer)
    plan = await store.link(tx, target, lid_peer, by=phone_peer)
    return not plan.already
