"""Event ids in commit order, so a reader's ``id > last`` cursor never skips one.

Every reader of the event log — the event tail of ``polpo serve``, the SSE
stream ``/api/v1/events``, the notifier's durable cursor — resumes after the
last id it saw. That is only safe if ids become visible in increasing order.
SQLite guarantees it: writers take turns, so an id is taken and committed
under one lock. On PostgreSQL ids come from a sequence when a row is
inserted, and two transactions may commit in the other order: the reader
then sees id 12, moves its cursor past it, and never sees id 11 when its
transaction commits a moment later.

So on PostgreSQL a writing transaction gives its events their final ids at
the very end, just before it commits: it takes a database-wide advisory
lock (held until the commit), draws new ids from the sequence and moves its
rows to them. The next transaction can only draw ids after this one has
committed and become visible, so ids are visible in order. The lock is held
for one statement and the commit, with no other lock taken after it (no
deadlock is possible). The same moment sends ``NOTIFY polpo_events`` (it is
delivered at commit), which wakes other processes' readers at once.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from polpo.core.models import Event
from polpo.store.connection import Connection
from polpo.store.engine import advisory_key

#: the LISTEN/NOTIFY channel a commit with events signals on
EVENTS_CHANNEL = "polpo_events"

_LOCK_AND_NOTIFY = sa.text("SELECT pg_advisory_xact_lock(:key), pg_notify(:channel, '')")
_NEW_IDS = sa.text(
    "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)"
)
_MOVE = sa.text(
    "UPDATE events SET id = m.new "
    "FROM unnest(CAST(:old AS integer[]), CAST(:new AS integer[])) AS m(old, new) "
    "WHERE events.id = m.old RETURNING m.old, m.new"
)


async def commit_order(conn: Connection, events: list[Event]) -> list[Event]:
    """Give this transaction's ``events`` their final ids; call it just before COMMIT.

    Returns the events with their final ids, in the order they were emitted
    (without any whose row is gone, e.g. rolled back to a savepoint). On
    SQLite they are returned unchanged.
    """
    if not events or conn.dialect.name != "postgresql":
        return events
    await conn.execute(_LOCK_AND_NOTIFY, {"key": advisory_key("events"), "channel": EVENTS_CHANNEL})
    new_ids = sorted(int(r[0]) for r in await conn.execute(_NEW_IDS, {"n": len(events)}))
    res = await conn.execute(_MOVE, {"old": [e.id for e in events], "new": new_ids})
    moved = {int(old): int(new) for old, new in res.all()}
    return [dataclasses.replace(e, id=moved[e.id]) for e in events if e.id in moved]
