"""Peers, their linked groups and the dynamic allowlist.

A peer id is ``channel:externalId`` (SPEC §2). Linked peers are one person:
the canonical peer has ``linked_to`` NULL, the others name it (the rule is
:mod:`polpo.core.linking`). The gateway touches a peer and resolves its
group for every message, so those two statements are :class:`~polpo.store.hot.Hot`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from polpo.core.linking import LinkPlan, canonical_of, plan_link
from polpo.store.connection import Connection
from polpo.store.engine import insert_ignore
from polpo.store.hot import Hot
from polpo.store.tables import allowlist, pairing_requests, peers, sessions
from polpo.store.tx import Tx


@dataclass(frozen=True)
class Group:
    """A peer and the person behind it."""

    peer_id: str
    #: the person's canonical peer id (sessions are keyed by it)
    canonical: str
    #: every peer id of the person: the canonical one and all linked to it, sorted
    members: tuple[str, ...]


_TOUCH_NAMED = Hot(
    peers.update()
    .where(peers.c.id == sa.bindparam("pid"))
    .values(last_seen=sa.bindparam("now"), display_name=sa.bindparam("name")),
    ("pid", "now", "name"),
)
_TOUCH = Hot(
    peers.update().where(peers.c.id == sa.bindparam("pid")).values(last_seen=sa.bindparam("now")),
    ("pid", "now"),
)
_GROUP = Hot(
    sa.select(peers.c.id, peers.c.linked_to).where(
        sa.or_(peers.c.id == sa.bindparam("pid"), peers.c.linked_to == sa.bindparam("pid"))
    ),
    ("pid",),
)


async def touch(
    conn: Connection, peer_id: str, channel: str, display_name: str | None, now: float
) -> None:
    """Record that ``peer_id`` was seen now (created on first sight; name kept fresh)."""
    if display_name:
        res = await _TOUCH_NAMED.run(conn, {"pid": peer_id, "now": now, "name": display_name})
    else:
        res = await _TOUCH.run(conn, {"pid": peer_id, "now": now})
    if res.rowcount == 0:
        # ON CONFLICT DO NOTHING: another process may insert the same new peer at once
        # (PostgreSQL); then the row is there and this one's sighting updates it
        added = await conn.execute(
            insert_ignore(conn.dialect.name, peers).returning(peers.c.id),
            {
                "id": peer_id,
                "channel": channel,
                "display_name": display_name or None,
                "first_seen": now,
                "last_seen": now,
                "linked_to": None,
            },
        )
        if added.first() is None:
            if display_name:
                await _TOUCH_NAMED.run(conn, {"pid": peer_id, "now": now, "name": display_name})
            else:
                await _TOUCH.run(conn, {"pid": peer_id, "now": now})


async def ensure(conn: Connection, peer_id: str, now: float) -> None:
    """A peer linked before it ever wrote gets a row; ``last_seen`` 0 means "never".

    One ``INSERT … ON CONFLICT DO NOTHING``: two processes linking at once both go on."""
    await conn.execute(
        insert_ignore(conn.dialect.name, peers),
        {
            "id": peer_id,
            "channel": peer_id.split(":", 1)[0],
            "display_name": None,
            "first_seen": now,
            "last_seen": 0.0,
            "linked_to": None,
        },
    )


async def paired(
    conn: Connection, peer_id: str, channel: str, display_name: str | None, asked_at: float
) -> None:
    """A peer let in by pairing gets the row its messages did not (a sender who is not
    admitted has none): seen when it asked, under the name it gave. An existing row
    keeps its times, and gets the name only if it had none."""
    await conn.execute(
        insert_ignore(conn.dialect.name, peers),
        {
            "id": peer_id,
            "channel": channel,
            "display_name": display_name or None,
            "first_seen": asked_at,
            "last_seen": asked_at,
            "linked_to": None,
        },
    )
    if display_name:
        await conn.execute(
            peers.update()
            .where(peers.c.id == peer_id, peers.c.display_name.is_(None))
            .values(display_name=display_name)
        )


async def group_of(conn: Connection, peer_id: str) -> Group:
    """The canonical peer and the whole linked group of ``peer_id``."""
    rows = (await _GROUP.run(conn, {"pid": peer_id})).rows
    linked = next((r[1] for r in rows if r[0] == peer_id), None)
    if linked:  # peer_id is linked to another: the group is that one's
        rows = (await _GROUP.run(conn, {"pid": linked})).rows
    canonical = canonical_of(peer_id, linked)
    members = {canonical, peer_id, *(r[0] for r in rows)}
    return Group(peer_id, canonical, tuple(sorted(members)))


async def canonical(conn: Connection, peer_id: str) -> str:
    linked = await conn.scalar(sa.select(peers.c.linked_to).where(peers.c.id == peer_id))
    return canonical_of(peer_id, str(linked) if linked else None)


async def members(conn: Connection, canonical_id: str) -> list[str]:
    """The canonical peer first, then the peers linked to it (oldest first)."""
    linked = (
        (
            await conn.execute(
                sa.select(peers.c.id)
                .where(peers.c.linked_to == canonical_id)
                .order_by(peers.c.first_seen, peers.c.id)
            )
        )
        .scalars()
        .all()
    )
    return [canonical_id, *linked]


async def set_linked(conn: Connection, ids: Iterable[str], to: str | None) -> None:
    wanted = list(ids)
    if wanted:
        await conn.execute(peers.update().where(peers.c.id.in_(wanted)).values(linked_to=to))


async def known(conn: Connection, peer_id: str) -> bool:
    """``peer_id`` has a peer row, an allowlist entry or a pending pairing request
    (a sender who was never admitted has no peer row, yet may be waiting for a code)."""
    found = await conn.scalar(
        sa.union_all(
            sa.select(peers.c.id).where(peers.c.id == peer_id),
            sa.select(allowlist.c.peer_id).where(allowlist.c.peer_id == peer_id),
            sa.select(pairing_requests.c.peer_id).where(
                pairing_requests.c.peer_id == peer_id, pairing_requests.c.status == "pending"
            ),
        ).limit(1)
    )
    return found is not None


async def link(tx: Tx, target: str, joining: str, *, by: str) -> LinkPlan:
    """Join ``joining``'s group into ``target``'s (``target`` canonical), as
    :mod:`polpo.core.linking` says: members re-pointed, pending pairing requests
    and the open session follow, one ``peer:linked`` per moved peer."""
    conn, now = tx.conn, tx.now
    await ensure(conn, target, now)
    await ensure(conn, joining, now)
    joining_canonical = await canonical(conn, joining)
    plan = plan_link(target, joining_canonical, await members(conn, joining_canonical))
    if plan.already:
        return plan
    await set_linked(conn, plan.moving, target)
    await conn.execute(
        pairing_requests.update()
        .where(pairing_requests.c.peer_id.in_(plan.moving), pairing_requests.c.status == "pending")
        .values(peer_id=target)
    )
    has_session = await conn.scalar(
        sa.select(sessions.c.id).where(sessions.c.peer_id == target, sessions.c.ended_at.is_(None))
    )
    if has_session is None:
        await conn.execute(
            sessions.update()
            .where(sessions.c.peer_id == joining_canonical, sessions.c.ended_at.is_(None))
            .values(peer_id=target)
        )
    for p in plan.moving:
        await tx.emit("peer:linked", {"peerId": p, "canonical": target, "by": by})
    return plan


# -- the dynamic allowlist -------------------------------------------------------


_LISTED = sa.select(allowlist.c.peer_id).where(
    allowlist.c.peer_id.in_(sa.bindparam("ids", expanding=True))
)


async def allowlisted(conn: Connection, ids: Iterable[str]) -> frozenset[str]:
    """Which of ``ids`` are on the dynamic allowlist."""
    wanted = list(ids)
    if not wanted:
        return frozenset()
    return frozenset((await conn.execute(_LISTED, {"ids": wanted})).scalars().all())


async def allow(tx: Tx, peer_id: str, *, by: str, source: str) -> bool:
    """Put ``peer_id`` on the allowlist (``peer:allowed``); False if it was there."""
    res = await tx.conn.execute(
        insert_ignore(tx.conn.dialect.name, allowlist)
        .values(peer_id=peer_id, added_by=by, added_at=tx.now, source=source)
        .returning(allowlist.c.peer_id)
    )
    if res.first() is None:
        return False
    await tx.emit("peer:allowed", {"peerId": peer_id, "by": by, "source": source})
    return True
