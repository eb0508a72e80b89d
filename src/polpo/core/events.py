"""In-process publish/subscribe for the event log.

Services append events to the ``events`` table inside the transaction that
caused them and publish them here after commit. A process that must also see
events written by other processes (``polpo serve`` seeing a CLI approval)
tails the table with :class:`polpo.services.events.EventTail`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Awaitable, Callable

from polpo.core.models import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []
        self._queues: list[tuple[str, asyncio.Queue[Event]]] = []

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` for every event whose type matches the glob ``pattern``.

        Returns a function that unsubscribes.
        """
        entry = (pattern, handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry) if entry in self._handlers else None

    def queue(
        self, pattern: str = "*", maxsize: int = 1000
    ) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A queue that receives matching events (for SSE streams); drops when full."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        entry = (pattern, q)
        self._queues.append(entry)
        return q, lambda: self._queues.remove(entry) if entry in self._queues else None

    async def publish(self, events: list[Event]) -> None:
        for ev in events:
            for pattern, q in list(self._queues):
                if fnmatch.fnmatchcase(ev.type, pattern):
                    try:
                        q.put_nowait(ev)
                    except asyncio.QueueFull:
                        log.warning("event queue full; dropping %s for a slow subscriber", ev.type)
            for pattern, handler in list(self._handlers):
                if fnmatch.fnmatchcase(ev.type, pattern):
                    try:
                        await handler(ev)
                    except Exception:  # a subscriber's bug must not break the publisher
                        log.exception("event handler failed for %s", ev.type)
