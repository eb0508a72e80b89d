"""Database leases: exactly one process holds a named resource (SPEC §11).

A lease is a row in ``leases`` (name, holder, acquired_at, expires_at). A
process takes it when the row is absent, expired (``expires_at <= now``) or
already its own, keeps it by renewing before it expires, and gives it back
on stop. A holder that dies simply stops renewing: once the row expires the
next process takes it. Works on SQLite and PostgreSQL through SQLAlchemy
Core; every change is one conditional statement, so two processes (or two
machines sharing a PostgreSQL database) can never both believe they hold it.

Times come from the caller's clock (``now``): the holders must share a
reasonably synchronised wall clock, which the TTL (tens of seconds) absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from polpo.store.engine import Store, dialect_insert
from polpo.store.tables import leases


@dataclass(frozen=True)
class Lease:
    """Who holds ``name``, since when and until when (seconds since the epoch)."""

    name: str
    holder: str
    acquired_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return self.expires_at <= now


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def acquire(store: Store, name: str, holder: str, *, now: float, ttl: float) -> Lease | None:
    """Take ``name`` for ``holder`` until ``now + ttl``; None when someone else holds it.

    Taken when the row is absent, expired, or already ``holder``'s (then it is
    extended and keeps its ``acquired_at``).
    """
    if ttl <= 0:
        raise ValueError("a lease needs a positive ttl")
    expires = now + ttl
    # One upsert: absent → inserted; expired or ours → taken over (ours keeps its
    # acquired_at); held by someone else → left alone. Two processes at once: one
    # inserts or updates, the other's conflict re-checks the WHERE and finds it held.
    stmt = dialect_insert(store, leases).values(
        name=name, holder=holder, acquired_at=now, expires_at=expires
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "holder": stmt.excluded.holder,
            "acquired_at": sa.case(
                (leases.c.holder == holder, leases.c.acquired_at), else_=stmt.excluded.acquired_at
            ),
            "expires_at": stmt.excluded.expires_at,
        },
        where=sa.or_(leases.c.expires_at <= now, leases.c.holder == holder),
    )
    async with store.write() as conn:
        await conn.execute(stmt)
        row = (await conn.execute(sa.select(leases).where(leases.c.name == name))).one()
    lease = _lease(row)
    return lease if lease.holder == holder else None


async def take_over(
    store: Store, name: str, holder: str, *, dead: str, now: float, ttl: float
) -> Lease | None:
    """Take ``name`` from ``dead``, a holder known to be gone (a crashed process on
    this machine), before its lease expires; None when ``dead`` no longer holds it."""
    async with store.write() as conn:
        result = await conn.execute(
            leases.update()
            .where(leases.c.name == name, leases.c.holder == dead)
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        )
    if _rowcount(result) != 1:
        return None
    return Lease(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)


async def renew(store: Store, name: str, holder: str, *, now: float, ttl: float) -> bool:
    """Extend ``holder``'s lease to ``now + ttl``; False when it is no longer theirs.

    An expired lease nobody else took yet is still ours: renewing it is fine.
    """
    async with store.write() as conn:
        result = await conn.execute(
            leases.update()
            .where(leases.c.name == name, leases.c.holder == holder)
            .values(expires_at=now + ttl)
        )
    return _rowcount(result) == 1


async def release(store: Store, name: str, holder: str) -> bool:
    """Give ``name`` back; only its holder can. True when a row was deleted."""
    async with store.write() as conn:
        result = await conn.execute(
            leases.delete().where(leases.c.name == name, leases.c.holder == holder)
        )
    return _rowcount(result) == 1


async def current(store: Store, name: str) -> Lease | None:
    """The row for ``name`` (possibly expired), or None when nobody ever took it."""
    async with store.read() as conn:
        row = (await conn.execute(sa.select(leases).where(leases.c.name == name))).first()
    return None if row is None else _lease(row)


def _lease(row: Any) -> Lease:
    return Lease(
        name=str(row.name),
        holder=str(row.holder),
        acquired_at=float(row.acquired_at),
        expires_at=float(row.expires_at),
    )
