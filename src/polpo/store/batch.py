"""A write coalescer: steps of many callers share one transaction.

Every write step of the gateway (store an inbound message, admit it, finish
a turn, mark a row sent) is an async function of a :class:`~polpo.store.tx.Tx`.
Steps submitted while a transaction runs wait, then all run in the next
one: under load hundreds of messages commit together instead of one
``BEGIN IMMEDIATE … COMMIT`` each. Each step still happens completely or not
at all: if any step of a batch fails, the batch is rolled back and its steps
are retried one transaction each, so one bad step fails alone. A step that
finds the batcher idle (nothing queued or being written, no other step in
this turn of the loop) runs in its caller's own task: no hop to another task
and back, which is most of what a lone ``/status`` would wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from polpo.core.models import Event
from polpo.store.engine import Store
from polpo.store.tx import Tx, write_tx

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The most steps one transaction takes; more wait for the next one.
MAX_BATCH = 500

Step = Callable[[Tx], Awaitable[Any]]


class WriteBatcher:
    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], float],
        origin: str,
        publish: Callable[[list[Event]], Awaitable[None]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.store = store
        self._now = now
        self._origin = origin
        self._publish = publish
        self.max_batch = max_batch
        self._queue: list[tuple[Step, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        #: transactions run by their caller's own task (nothing else was waiting)
        self._direct = 0
        self._direct_done = asyncio.Event()
        #: False from a direct transaction to the next turn of the loop: callers of the
        #: same turn (a burst: many peers at once) queue and share one transaction
        self._direct_open = True
        #: transactions committed and steps run (for the benchmark and tests)
        self.transactions = 0
        self.steps = 0

    async def run(self, step: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``step`` in a write transaction (shared with others) and return its result.

        When nothing else is waiting or being written, the caller's own task runs the
        transaction: no task to start and no turn of the loop before it, nor after
        it (the reply of a ``/status`` on an idle gateway goes out sooner). Steps
        arriving meanwhile, or in the same turn of the loop, queue up and share the
        next transaction."""
        if (
            self._direct_open
            and not self._queue
            and not self._direct
            and (self._task is None or self._task.done())
        ):
            self._direct_open = False
            asyncio.get_running_loop().call_soon(self._reopen)
            self._direct += 1
            try:
                [result] = await self._commit([step])
            finally:
                self._direct -= 1
                if not self._direct:
                    self._direct_done.set()
            self.transactions += 1
            self.steps += 1
            return result  # type: ignore[no-any-return]
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((step, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="polpo-write-batcher")
        return await fut

    def _reopen(self) -> None:
        self._direct_open = True

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run the synchronous ``fn`` in one read transaction."""
        async with self.store.read() as conn:
            return await conn.run_sync(fn)

    async def wait_idle(self) -> None:
        while self._direct or (self._task is not None and not self._task.done()):
            if self._direct:
                self._direct_done.clear()
                await self._direct_done.wait()
                continue
            assert self._task is not None
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def close(self) -> None:
        await self.wait_idle()

    async def _commit(self, steps: list[Step]) -> list[Any]:
        async with write_tx(self.store, self._now(), self._origin) as tx:
            results = [await step(tx) for step in steps]
        if tx.events:
            await self._publish(tx.events)
        return results

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                results = await self._commit([step for step, _ in batch])
            except Exception as e:
                if len(batch) == 1:
                    _fail(batch[0][1], e)
                    continue
                log.debug("a batch of %d writes failed; retrying them one by one", len(batch))
                for step, fut in batch:
                    try:
                        [result] = await self._commit([step])
                    except Exception as e1:
                        _fail(fut, e1)
                    else:
                        self.transactions += 1
                        self.steps += 1
                        if not fut.done():
                            fut.set_result(result)
                continue
            self.transactions += 1
            self.steps += len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)
