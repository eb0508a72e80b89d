"""Pairing requests (SPEC §3): an unknown sender on a ``pairing`` channel gets a code.

The rules (code life, resend throttle, 3 slots per channel, told-full once
a day, 24 h cooldown after an unused code) are :mod:`polpo.core.pairing`;
this applies them in the admission's transaction and says what to answer.
Creating a request emits ``peer:pairing_requested`` so the notifications
alert the admins. Approving (``/pair``, ``polpo pair approve``, the API)
belongs to :mod:`polpo.services.peers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from polpo.core.pairing import pairing_step
from polpo.gateway.markdown import literal_line
from polpo.store import pairing as store
from polpo.store.pairing import PendingRequest
from polpo.store.tx import Tx

__all__ = ["PairingOutcome", "PendingRequest", "pairing_reply", "request_pairing"]

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


def _name(display_name: str | None) -> str:
    return f" {literal_line(display_name, 60)}" if display_name and display_name.strip() else ""


def pairing_reply(code: str, display_name: str | None) -> str:
    return PAIRING_REPLY.format(code=code, name=_name(display_name))


async def request_pairing(
    tx: Tx,
    *,
    channel: str,
    peer_id: str,
    chat_id: str,
    display_name: str | None,
    owner: str | None = None,
) -> PairingOutcome:
    """Create (or re-send) the pairing request of an unknown sender, within the limits."""
    conn, now = tx.conn, tx.now
    live = await store.live(conn, channel, now)
    if not any(r.peer_id == peer_id for r in live):
        await store.expire_lapsed(conn, now)
        lapsed = await store.lapsed_recently(conn, peer_id, now)
        told = await store.told_full_at(conn, peer_id) if not lapsed else None
    else:
        lapsed, told = False, None
    step, mine = pairing_step(peer_id, live, now=now, lapsed_recently=lapsed, told_full_at=told)
    if step == "throttled":
        return PairingOutcome(None, "throttled")
    if step == "resend":
        assert mine is not None
        await store.resend(conn, mine.code, chat_id, now)
        return PairingOutcome(mine.code, "resent", pairing_reply(mine.code, display_name))
    if step == "cooldown":
        return PairingOutcome(None, "cooldown")
    if step == "full":
        return PairingOutcome(None, "full")
    if step == "tell full":
        await store.record_told_full(conn, peer_id, channel, now)
        return PairingOutcome(None, "told full", TRY_LATER_REPLY.format(name=_name(display_name)))
    code = await store.create(
        conn,
        channel=channel,
        peer_id=peer_id,
        chat_id=chat_id,
        display_name=display_name,
        owner=owner,
        now=now,
    )
    await tx.emit(
        "peer:pairing_requested",
        {"peerId": peer_id, "displayName": display_name, "code": code, "channel": channel},
    )
    return PairingOutcome(code, "created", pairing_reply(code, display_name))
