"""Per-key serial runners: one sender's messages in order, different senders at once.

:class:`Lanes` runs the items pushed under one key strictly one after the
other, in the order pushed; keys run concurrently, at most ``limit`` at once
(a lane holds its slot until it is empty). :class:`KeyedLock` makes one
person's linked identities (each with its own lane) take turns. Neither
knows what an item is: the gateway pushes inbound messages, tests push
anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Lanes(Generic[T]):
    """Runs ``run(item)`` for each pushed item: in order per key, keys concurrently.

    ``run`` should handle its own errors; one that escapes is logged and the
    lane goes on with its next item. Cancelling (:meth:`cancel`) drops what is
    queued: the caller keeps its own durable record of unfinished items.
    """

    def __init__(self, run: Callable[[T], Awaitable[None]], *, limit: int) -> None:
        self._run = run
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[str, deque[T]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def busy(self, key: str) -> bool:
        """Whether ``key`` has an item queued or running."""
        return key in self._queues

    @property
    def outstanding(self) -> int:
        """Items pushed and not yet finished, all keys together."""
        return self._outstanding

    def push(self, key: str, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(item)
        self._outstanding += 1
        self._idle.clear()
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._drain(key, queue), name=f"lane {key}")

    async def wait_idle(self, within: float | None = None) -> None:
        """Wait until every pushed item has run (``TimeoutError`` after ``within`` s)."""
        await asyncio.wait_for(self._idle.wait(), within)

    async def cancel(self) -> None:
        """Cancel every lane (the running items included) and wait for them to end."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _drain(self, key: str, queue: deque[T]) -> None:
        try:
            async with self._slots:
                while queue:
                    try:
                        await self._run(queue[0])
                    except Exception:
                        log.exception("lane %s: an item failed", key)
                    finally:
                        queue.popleft()
                        self._outstanding -= 1
        finally:
            del self._tasks[key]
            if queue:  # cancelled with items left
                self._outstanding -= len(queue)
            del self._queues[key]
            if self._outstanding <= 0:
                self._outstanding = 0
                self._idle.set()


class KeyedLock:
    """One holder at a time per key; a key's entry lives only while someone wants it."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                del self._entries[key]

    def held(self, key: str) -> bool:
        """Whether someone holds (or waits for) ``key``."""
        return key in self._entries

    def __len__(self) -> int:
        """Keys currently held or waited for."""
        return len(self._entries)
