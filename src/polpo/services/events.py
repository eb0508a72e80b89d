"""Seeing events written by other processes.

The CLI approving a task while ``polpo serve`` runs writes an
``approval:resolved`` event to the shared database; the tail picks it up
and publishes it on this process's bus, so the runner and notifications react
as if it had happened here.

The tail resumes after the last id it read: event ids become visible in
increasing order on both engines (:mod:`polpo.store.event_order`), so no
event committed late is skipped. On PostgreSQL it reads as soon as a commit
elsewhere sends ``NOTIFY`` (:mod:`polpo.store.listen`); ``interval`` is the
poll in case no notification comes.
"""

from __future__ import annotations

import asyncio
import logging

from polpo.core.events import EventBus
from polpo.store import Store
from polpo.store.listen import EventSignal
from polpo.store.records import events_after, last_event_id

log = logging.getLogger(__name__)


class EventTail:
    def __init__(self, store: Store, bus: EventBus, origin: str, interval: float = 0.5) -> None:
        self.store = store
        self.bus = bus
        self.origin = origin
        self.interval = interval
        self.last_id = 0

    async def start_at_end(self) -> None:
        async with self.store.read() as conn:
            self.last_id = await last_event_id(conn)

    async def poll_once(self) -> int:
        """Publish foreign events newer than the last seen; return how many."""
        async with self.store.read() as conn:
            batch = await events_after(conn, self.last_id)
        if not batch:
            return 0
        self.last_id = batch[-1].id
        foreign = [e for e in batch if e.origin != self.origin]
        if foreign:
            await self.bus.publish(foreign)
        return len(foreign)

    async def run(self) -> None:
        signal = EventSignal(self.store)
        await signal.start()
        try:
            while True:
                try:
                    await self.poll_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event tail failed; retrying")
                await signal.wait(self.interval)
        finally:
            await signal.close()
