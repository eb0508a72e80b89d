"""What every service needs: the store, the clock, the event bus, the config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from polpo.clock import Clock
from polpo.config import PolpoConfig
from polpo.core.events import EventBus
from polpo.store import PROCESS_ID, Store
from polpo.store.batch import WriteBatcher
from polpo.store.connection import Connection
from polpo.store.tx import Tx, write_tx

__all__ = ["ServiceContext", "Tx"]


@dataclass(eq=False)  # one context is one project opened: compared (and hashed) by identity
class ServiceContext:
    store: Store
    clock: Clock
    bus: EventBus
    config: PolpoConfig
    origin: str = PROCESS_ID

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        async with write_tx(self.store, self.clock.now(), self.origin) as tx:
            yield tx
        if tx.events:
            await self.bus.publish(tx.events)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with self.store.read() as conn:
            yield conn

    def write_batcher(self) -> WriteBatcher:
        """A :class:`WriteBatcher` whose transactions are this context's (clock, origin, bus)."""
        return WriteBatcher(
            self.store, now=self.clock.now, origin=self.origin, publish=self.bus.publish
        )
