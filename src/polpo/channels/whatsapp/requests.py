"""Commands sent to the worker that wait for its answer, matched by ``ref``.

A send (``Sent``) and a download (``Downloaded``) work the same way: the
channel picks a ref, writes the command, and waits a bounded time for the
worker's answer or its ``Error`` with that ref; when the worker exits, every
waiter fails (retryable) at once instead of running into its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from polpo.channels.whatsapp import protocol as p
from polpo.errors import ChannelError

T = TypeVar("T")

Writer = Callable[[p.Command], Awaitable[bool]]


class Requests(Generic[T]):
    """Commands in flight whose answers are of type ``T``; refs are ``<prefix><n>``."""

    def __init__(self, prefix: str, write: Writer) -> None:
        self._prefix = prefix
        self._write = write
        self._refs = itertools.count(1)
        self._pending: dict[str, asyncio.Future[T]] = {}

    async def ask(self, command: Callable[[str], p.Command], within: float, late: str) -> T:
        """Write ``command(ref)`` and wait for its answer; ``late`` says what did not
        happen within ``within`` seconds (raised as a retryable ChannelError)."""
        ref = f"{self._prefix}{next(self._refs)}"
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            if not await self._write(command(ref)):
                raise ChannelError("whatsapp: not connected (the worker is restarting)")
            try:
                return await asyncio.wait_for(future, within)
            except TimeoutError:
                raise ChannelError(f"whatsapp: {late} within {within:.0f} s") from None
        finally:
            self._pending.pop(ref, None)

    def owns(self, ref: str | None) -> bool:
        return bool(ref) and ref in self._pending

    def answer(self, ref: str, value: T) -> None:
        """The worker answered ``ref``."""
        future = self._pending.pop(ref, None)
        if future is not None and not future.done():
            future.set_result(value)

    def fail(self, event: p.Error) -> None:
        """The worker could not run the command ``event.ref``."""
        future = self._pending.pop(event.ref or "", None)
        if future is not None and not future.done():
            future.set_exception(
                ChannelError(f"whatsapp: {event.message}", retryable=event.retryable)
            )

    def fail_all(self, why: str) -> None:
        """The worker is gone: every command waiting for it fails (retryable)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelError(f"whatsapp: {why}", retryable=True))
