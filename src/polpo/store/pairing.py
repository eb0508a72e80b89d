"""Pairing requests and the strangers told the slots are full (rules: :mod:`polpo.core.pairing`)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from polpo.core.pairing import CODE_TTL_SECONDS, COOLDOWN_SECONDS, LiveRequest, new_code
from polpo.store.connection import Connection
from polpo.store.tables import pairing_requests, pairing_turned_away


@dataclass(frozen=True)
class PendingRequest:
    code: str
    channel: str
    peer_id: str
    display_name: str | None
    created_at: float


async def live(conn: Connection, channel: str, now: float) -> list[LiveRequest]:
    """The channel's pending, unexpired requests."""
    rows = (
        await conn.execute(
            sa.select(
                pairing_requests.c.code, pairing_requests.c.peer_id, pairing_requests.c.last_sent_at
            ).where(
                pairing_requests.c.channel == channel,
                pairing_requests.c.status == "pending",
                pairing_requests.c.expires_at > now,
            )
        )
    ).all()
    return [LiveRequest(r[0], r[1], r[2]) for r in rows]


async def resend(conn: Connection, code: str, chat_id: str, now: float) -> None:
    """The same code sent again (its expiry stays where it was)."""
    await conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.code == code)
        .values(last_sent_at=now, chat_id=chat_id)
    )


async def expire_lapsed(conn: Connection, now: float) -> None:
    """Requests past their time are expired, whatever their status says."""
    await conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.status == "pending", pairing_requests.c.expires_at <= now)
        .values(status="expired")
    )


async def lapsed_recently(conn: Connection, peer_id: str, now: float) -> bool:
    """A code of ``peer_id`` expired unused within the cooldown."""
    found = await conn.scalar(
        sa.select(pairing_requests.c.code)
        .where(
            pairing_requests.c.peer_id == peer_id,
            pairing_requests.c.status == "expired",
            pairing_requests.c.expires_at > now - COOLDOWN_SECONDS,
        )
        .limit(1)
    )
    return found is not None


async def told_full_at(conn: Connection, peer_id: str) -> float | None:
    told = await conn.scalar(
        sa.select(pairing_turned_away.c.told_at).where(pairing_turned_away.c.peer_id == peer_id)
    )
    return None if told is None else float(told)


async def record_told_full(conn: Connection, peer_id: str, channel: str, now: float) -> None:
    await conn.execute(pairing_turned_away.delete().where(pairing_turned_away.c.peer_id == peer_id))
    await conn.execute(
        pairing_turned_away.insert().values(peer_id=peer_id, channel=channel, told_at=now)
    )


async def create(
    conn: Connection,
    *,
    channel: str,
    peer_id: str,
    chat_id: str,
    display_name: str | None,
    owner: str | None,
    now: float,
) -> str:
    """A new pending request with a fresh code; returns the code."""
    code = new_code()
    while (
        await conn.scalar(sa.select(pairing_requests.c.code).where(pairing_requests.c.code == code))
    ) is not None:
        code = new_code()
    await conn.execute(
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
    return code


async def pending(conn: Connection, now: float, limit: int = 5) -> list[PendingRequest]:
    """The live pending requests, oldest first (for ``/status``); at most ``limit``."""
    rows = (
        await conn.execute(
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
        )
    ).all()
    return [PendingRequest(*r) for r in rows]
