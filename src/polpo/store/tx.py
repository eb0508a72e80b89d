"""One write transaction: its connection, its clock reading, the events it publishes.

Every write in Polpo — a service call, a step of the gateway, a migration —
runs in a :class:`Tx`. Events appended with :meth:`Tx.emit` are rows of the
same transaction; whoever opened it publishes them on the bus after the
commit, so a subscriber never hears of something that was rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polpo.core.models import Event
from polpo.store.connection import Connection
from polpo.store.event_order import commit_order
from polpo.store.records import append_event

if TYPE_CHECKING:
    from polpo.store.engine import Store


@dataclass
class Tx:
    """One write transaction and the events it will publish after commit."""

    conn: Connection
    now: float
    origin: str
    events: list[Event] = field(default_factory=list)

    async def emit(self, type_: str, payload: dict[str, Any]) -> Event:
        """Append an event; on PostgreSQL its id is final only at commit (see :func:`write_tx`)."""
        ev = await append_event(self.conn, type_, payload, self.now, self.origin)
        self.events.append(ev)
        return ev


@asynccontextmanager
async def write_tx(store: Store, now: float, origin: str) -> AsyncIterator[Tx]:
    """A :class:`Tx` in a write transaction of ``store``; when the block ends without an
    error, the events get their final ids (:mod:`polpo.store.event_order`) and it
    commits. ``tx.events`` then holds what to publish."""
    async with store.write() as conn:
        tx = Tx(conn, now, origin)
        yield tx
        tx.events = await commit_order(conn, tx.events)
