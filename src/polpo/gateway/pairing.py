"""Pairing requests (SPEC §3): an unknown sender on a ``pairing`` channel gets a code.

The code is 8 characters from an alphabet without look-alikes, valid 60
minutes; at most 3 are pending per channel (further senders get nothing
until a slot frees); a sender who writes again gets the same code at most
once per 10 minutes. Creating one emits ``peer:pairing_requested`` so the
notifications alert the admins. Approving (``/pair``, ``polpo pair
approve``, the API) belongs to :mod:`polpo.services.peers`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from polpo.gateway.markdown import literal_line
from polpo.gateway.writes import SyncTx
from polpo.store.tables import pairing_requests

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL_SECONDS = 60 * 60
MAX_PENDING_PER_CHANNEL = 3
RESEND_AFTER_SECONDS = 10 * 60

PAIRING_REPLY = (
    "Hi{name}! This is a private assistant. To get access, send this pairing code "
    "to its owner:\n\n**{code}**\n\nThey approve it with /pair {code}. "
    "The code expires in 60 minutes."
)


@dataclass(frozen=True)
class PairingOutcome:
    #: the code to send the requester, or None to stay silent
    code: str | None
    #: "created", "resent", "throttled", "full"
    what: str


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def pairing_reply(code: str, display_name: str | None) -> str:
    name = f" {literal_line(display_name, 60)}" if display_name and display_name.strip() else ""
    return PAIRING_REPLY.format(code=code, name=name)


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
        conn.execute(
            pairing_requests.update()
            .where(pairing_requests.c.code == mine.code)
            .values(last_sent_at=now, chat_id=chat_id)
        )
        return PairingOutcome(mine.code, "resent")
    # requests past their time are expired, whatever their status says
    conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.status == "pending", pairing_requests.c.expires_at <= now)
        .values(status="expired")
    )
    if len(live) >= MAX_PENDING_PER_CHANNEL:
        return PairingOutcome(None, "full")
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
    return PairingOutcome(code, "created")
