"""Pairing requests (SPEC §3): an unknown sender on a ``pairing`` channel gets a code.

The code is 8 characters from an alphabet without look-alikes, valid 60
minutes; a sender who writes again gets the same code at most once per 10
minutes, and writing again never extends it. At most 3 are pending per
channel: a stranger who finds them taken is told once (per day) to try later,
then gets silence. After a code expires unused, its peer waits 24 hours
before it can get a new one, so a few numbers pinging cannot hold the slots
forever. Creating one emits ``peer:pairing_requested`` so the notifications
alert the admins. Approving (``/pair``, ``polpo pair approve``, the API)
belongs to :mod:`polpo.services.peers`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from polpo.gateway.markdown import literal_line
from polpo.gateway.writes import SyncTx
from polpo.store.tables import pairing_requests, pairing_turned_away

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL_SECONDS = 60 * 60
MAX_PENDING_PER_CHANNEL = 3
RESEND_AFTER_SECONDS = 10 * 60
#: after a code expired unused, its peer gets no new one for this long
COOLDOWN_SECONDS = 24 * 60 * 60
#: a stranger told the slots are full is not told again for this long
TOLD_FULL_SECONDS = 24 * 60 * 60

PAIRING_REPLY = (
    "Hi{name}! This is a private assistant. To get access, send this pairing code "
    "to its owner:\n\n**{code}**\n\nThey approve it with /pair {code}. "
    "The code expires in 60 minutes."
)
TRY_LATER_REPLY = (
    "Hi{name}! This is a private assistant. It can't take new access requests "
    "right now. Please try again later."
)

PairingWhat = Literal["created", "resent", "throttled", "full", "told full", "cooldown"]


@dataclass(frozen=True)
class PairingOutcome:
    #: the code to send the requester (created or resent), else None
    code: str | None
    what: PairingWhat
    #: what to answer the requester (Markdown), or None to stay silent
    reply: str | None = None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _name(display_name: str | None) -> str:
    return f" {literal_line(display_name, 60)}" if display_name and display_name.strip() else ""


def pairing_reply(code: str, display_name: str | None) -> str:
    return PAIRING_REPLY.format(code=code, name=_name(display_name))


def request_pairing(
    tx: SyncTx,
    *,
    channel: str,
    peer_id: str,
    chat_id: str,
    display_name: str | None,
    owner: str | None = None,
) -> PairingOutcome:
    """Create (or re-send) the pairing request of an unknown sender, within the limits."""
    conn, now = tx.conn, tx.now
    live = (
        conn.execute(
            sa.select(pairing_requests).where(
                pairing_requests.c.channel == channel,
                pairing_requests.c.status == "pending",
                pairing_requests.c.expires_at > now,
            )
        )
    ).all()
    mine = next((r for r in live if r.peer_id == peer_id), None)
    if mine is not None:
        if now - mine.last_sent_at < RESEND_AFTER_SECONDS:
            return PairingOutcome(None, "throttled")
        # the same code again; its expiry stays where it was
        conn.execute(
            pairing_requests.update()
            .where(pairing_requests.c.code == mine.code)
            .values(last_sent_at=now, chat_id=chat_id)
        )
        return PairingOutcome(mine.code, "resent", pairing_reply(mine.code, display_name))
    # requests past their time are expired, whatever their status says
    conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.status == "pending", pairing_requests.c.expires_at <= now)
        .values(status="expired")
    )
    lapsed = conn.execute(
        sa.select(pairing_requests.c.code).where(
            pairing_requests.c.peer_id == peer_id,
            pairing_requests.c.status == "expired",
            pairing_requests.c.expires_at > now - COOLDOWN_SECONDS,
        )
    ).first()
    if lapsed is not None:
        return PairingOutcome(None, "cooldown")
    if len(live) >= MAX_PENDING_PER_CHANNEL:
        return _full(tx, channel, peer_id, display_name)
    code = new_code()
    while (
        conn.execute(sa.select(pairing_requests.c.code).where(pairing_requests.c.code == code))
    ).first() is not None:
        code = new_code()
    conn.execute(
        pairing_requests.insert().values(
            code=code,
            channel=channel,
            peer_id=peer_id,
            chat_id=chat_id,
            display_name=display_name,
            status="pending",
            created_at=now,
            expires_at=now + CODE_TTL_SECONDS,
            last_sent_at=now,
            owner=owner,
        )
    )
    tx.emit(
        "peer:pairing_requested",
        {"peerId": peer_id, "displayName": display_name, "code": code, "channel": channel},
    )
    return PairingOutcome(code, "created", pairing_reply(code, display_name))


def _full(tx: SyncTx, channel: str, peer_id: str, display_name: str | None) -> PairingOutcome:
    """No free slot: say so once (per :data:`TOLD_FULL_SECONDS`), then stay silent."""
    conn, now = tx.conn, tx.now
    told = conn.execute(
        sa.select(pairing_turned_away.c.told_at).where(pairing_turned_away.c.peer_id == peer_id)
    ).scalar()
    if told is not None and now - told < TOLD_FULL_SECONDS:
        return PairingOutcome(None, "full")
    conn.execute(pairing_turned_away.delete().where(pairing_turned_away.c.peer_id == peer_id))
    conn.execute(pairing_turned_away.insert().values(peer_id=peer_id, channel=channel, told_at=now))
    return PairingOutcome(None, "told full", TRY_LATER_REPLY.format(name=_name(display_name)))


@dataclass(frozen=True)
class PendingRequest:
    code: str
    channel: str
    peer_id: str
    display_name: str | None
    created_at: float


def pending_requests(conn: sa.Connection, now: float, limit: int = 5) -> list[PendingRequest]:
    """The live pending requests, oldest first (for ``/status``); at most ``limit``."""
    rows = conn.execute(
        sa.select(
            pairing_requests.c.code,
            pairing_requests.c.channel,
            pairing_requests.c.peer_id,
            pairing_requests.c.display_name,
            pairing_requests.c.created_at,
        )
        .where(pairing_requests.c.status == "pending", pairing_requests.c.expires_at > now)
        .order_by(pairing_requests.c.created_at)
        .limit(limit)
    ).all()
    return [PendingRequest(*r) for r in rows]
