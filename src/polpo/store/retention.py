"""Pruning what only grows: the storage half of ``settings.storage.retentionDays``.

Rows the gateway and the notifier leave behind once their work is done —
finished inbox rows, sent or failed outbox rows and their parts, old events,
and the leftovers of strangers (expired pairing requests, "try later"
notes, wrong ``/pair`` codes, used link codes) — are deleted when older than
the retention. What is still in use is never touched: inbox rows not yet
processed, outbox rows still pending, events the notifier has not passed.

Two invariants need care:

* **Ids never go backwards.** SQLite reuses the largest rowid once that row
  is deleted; a reused inbox id would collide with an old reply's
  ``dedupe_key = inbox:<id>`` (the new reply silently dropped), a reused
  event id would hide the event from the notifier's cursor and from event
  tails. So the newest row of ``inbox``, ``outbox`` and ``events`` is always
  kept.
* **Dedupe has a window.** An inbound message whose row was pruned would be
  processed again if its channel delivered it again. Channels redeliver only
  recent messages (Telegram keeps unconfirmed updates 24 h; WhatsApp's offline
  catch-up older than ``offlineMaxAgeMinutes`` is ignored), hence the
  retention's floor of one day.

Deletes go in batches (one short write transaction each), so a first prune
of a large database never holds the write lock for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from polpo.store.engine import Store
from polpo.store.tables import (
    events,
    inbox,
    link_codes,
    notification_cursor,
    outbox,
    outbox_parts,
    pair_failures,
    pairing_requests,
    pairing_turned_away,
)

DAY = 24 * 3600.0
#: rows deleted per write transaction
BATCH = 5000


@dataclass
class Pruned:
    """How many rows each table lost."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, table: str, n: int) -> None:
        if n:
            self.counts[table] = self.counts.get(table, 0) + n


def _newest(table: sa.Table) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.max(table.c.id)).scalar_subquery()


def _targets(cutoff: float) -> list[tuple[str, sa.Table, sa.ColumnElement[bool]]]:
    """(name, table, which rows go) for every table with an ``id`` column."""
    cursor = (
        sa.select(notification_cursor.c.last_event_id)
        .where(notification_cursor.c.name == "notifications")
        .scalar_subquery()
    )
    return [
        (
            "inbox",
            inbox,
            sa.and_(
                inbox.c.status.in_(("done", "ignored", "failed")),
                sa.func.coalesce(inbox.c.processed_at, inbox.c.received_at) < cutoff,
                inbox.c.id < _newest(inbox),
            ),
        ),
        (
            "outbox",
            outbox,
            sa.and_(
                outbox.c.status.in_(("sent", "failed")),
                sa.func.coalesce(outbox.c.sent_at, outbox.c.created_at) < cutoff,
                outbox.c.id < _newest(outbox),
            ),
        ),
        (
            "events",
            events,
            sa.and_(
                events.c.created_at < cutoff,
                events.c.id < _newest(events),
                # the notifier has passed it (no cursor yet: it would skip events this old)
                sa.or_(cursor.is_(None), events.c.id <= cursor),
            ),
        ),
        ("pair_failures", pair_failures, pair_failures.c.at < cutoff),
    ]


async def prune(store: Store, *, now: float, retention_days: float) -> Pruned:
    """Delete what is older than ``retention_days`` (at least one day) and done with."""
    cutoff = now - max(1.0, retention_days) * DAY
    pruned = Pruned()
    for name, table, which in _targets(cutoff):
        while True:
            async with store.write() as conn:
                doomed = (
                    sa.select(table.c.id).where(which).order_by(table.c.id).limit(BATCH)
                ).scalar_subquery()
                if table is outbox:
                    # their parts first, in the same transaction
                    res = await conn.execute(
                        outbox_parts.delete().where(outbox_parts.c.outbox_id.in_(doomed))
                    )
                    pruned.add("outbox_parts", res.rowcount or 0)
                res = await conn.execute(table.delete().where(table.c.id.in_(doomed)))
            n = res.rowcount or 0
            pruned.add(name, n)
            if n < BATCH:
                break
    async with store.write() as conn:
        # pairing leftovers: expired (past their 24 h cool-down too) or approved, long ago
        stale_request = sa.func.coalesce(
            pairing_requests.c.approved_at, pairing_requests.c.expires_at
        ) < min(cutoff, now - DAY)
        res = await conn.execute(pairing_requests.delete().where(stale_request))
        pruned.add("pairing_requests", res.rowcount or 0)
        res = await conn.execute(
            pairing_turned_away.delete().where(pairing_turned_away.c.told_at < now - DAY)
        )
        pruned.add("pairing_turned_away", res.rowcount or 0)
        res = await conn.execute(
            link_codes.delete().where(link_codes.c.expires_at < min(cutoff, now - DAY))
        )
        pruned.add("link_codes", res.rowcount or 0)
    return pruned
