"""Share one run of an async function between concurrent callers, never a stale one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Concurrent callers share one run of ``fn`` that started after they called.

    Under load many peers send ``/status`` at once; they get one fresh
    snapshot between them instead of one database round each. A caller
    never gets a result computed before it arrived: while a run is in
    flight, newcomers wait for the *next* run, which starts when it ends.
    """

    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        self._fn = fn
        self._running: asyncio.Future[T] | None = None
        self._next: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        task: asyncio.Future[T]
        if self._running is not None and (
            self._running.get_loop() is not asyncio.get_running_loop() or self._running.done()
        ):
            self._running = self._next = None  # left over from a closed event loop
        if self._running is None:
            task = asyncio.ensure_future(self._run(None))
            self._running = task
        else:
            if self._next is None:
                self._next = asyncio.ensure_future(self._run(self._running))
            task = self._next
        return await asyncio.shield(task)

    async def _run(self, after: asyncio.Future[T] | None) -> T:
        me = asyncio.current_task()
        if after is not None:
            await asyncio.wait([after])
            self._running, self._next = self._next, None
        try:
            return await self._fn()
        finally:
            if self._running is me:
                self._running = None
