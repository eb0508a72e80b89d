"""What every service needs: the store, the clock, the event bus, the config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from polpo.clock import Clock
from polpo.config import PolpoConfig
from polpo.core.events import EventBus
from polpo.core.models import Event
from polpo.store import PROCESS_ID, Store
from polpo.store.event_order import commit_order
from polpo.store.records import append_event


@dataclass
class Tx:
    """One write transaction and the events it will publish after commit."""

    conn: AsyncConnection
    now: float
    origin: str
    events: list[Event] = field(default_factory=list)

    async def emit(self, type_: str, payload: dict[str, Any]) -> Event:
        """Append an event; on PostgreSQL its id is final only after commit (see tx.events)."""
        ev = await append_event(self.conn, type_, payload, self.now, self.origin)
        self.events.append(ev)
        return ev


@dataclass
class ServiceContext:
    store: Store
    clock: Clock
    bus: EventBus
    config: PolpoConfig
    origin: str = PROCESS_ID

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        async with self.store.write() as conn:
            tx = Tx(conn, self.clock.now(), self.origin)
            yield tx
            tx.events = await commit_order(conn, tx.events)
        if tx.events:
            await self.bus.publish(tx.events)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.store.read() as conn:
            yield conn
