"""A small write coalescer: many lanes' writes share one SQLite transaction.

Every step of the pipeline that writes (store an inbound message, admit a
peer, record a reply) is a function of a :class:`~polpo.services.context.Tx`.
Steps submitted while a transaction is running wait, then all run in the
next one: under load a few hundred messages commit together instead of one
``BEGIN IMMEDIATE … COMMIT`` each. Each step still either happens completely
or not at all: if any step of a batch fails, the batch is rolled back and its
steps are retried one transaction each, so one bad step fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from polpo.services.context import ServiceContext, Tx

log = logging.getLogger(__name__)

T = TypeVar("T")
Step = Callable[[Tx], Awaitable[Any]]

#: The most steps one transaction takes; more wait for the next one.
MAX_BATCH = 500


class WriteBatcher:
    def __init__(self, ctx: ServiceContext, *, max_batch: int = MAX_BATCH) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self._queue: list[tuple[Step, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        #: transactions committed and steps run (for the benchmark and tests)
        self.transactions = 0
        self.steps = 0

    async def run(self, step: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``step`` in a write transaction (shared with others) and return its result."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((step, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="polpo-write-batcher")
        return await fut

    async def wait_idle(self) -> None:
        while self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                results: list[Any] = []
                async with self.ctx.tx() as tx:
                    for step, _ in batch:
                        results.append(await step(tx))
            except Exception:
                if len(batch) == 1:
                    _fail(batch[0][1])
                    continue
                log.debug("a batch of %d writes failed; retrying them one by one", len(batch))
                for step, fut in batch:
                    try:
                        async with self.ctx.tx() as tx:
                            result = await step(tx)
                    except Exception:
                        _fail(fut)
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


def _fail(fut: asyncio.Future[Any]) -> None:
    import sys

    exc = sys.exc_info()[1]
    if not fut.done() and exc is not None:
        fut.set_exception(exc)
