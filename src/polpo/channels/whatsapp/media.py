"""Attachments on demand: the worker fetches a message's file into a path the channel picks.

Only what the gateway asks for is downloaded — an admitted peer's voice
note or picture — never a stranger's; a file bigger than the caller's bound
is refused from the size the sender declared, before any byte is fetched.
Files are new (never overwritten), 0600, under the directory the caller
gives (``.polpo/media/`` in ``polpo serve``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

from polpo.channels.attachments import attachment_path
from polpo.channels.base import InboundMessage
from polpo.channels.whatsapp import protocol as p
from polpo.errors import ChannelError

Writer = Callable[[p.Command], Awaitable[bool]]


class Downloads:
    """``download`` commands in flight, completed by the worker's answers."""

    def __init__(self, *, write: Writer, timeout: float) -> None:
        self._write = write
        self._timeout = timeout
        self._refs = itertools.count(1)
        self._pending: dict[str, asyncio.Future[p.Downloaded]] = {}

    async def fetch(self, message: InboundMessage, directory: Path, max_bytes: int) -> Path:
        if message.attachment is None:
            raise ChannelError("whatsapp: that message carries no file", retryable=False)
        path = attachment_path(directory, message)
        if path.exists():
            return path  # fetched before (a replayed message): the same file
        ref = f"d{next(self._refs)}"
        future: asyncio.Future[p.Downloaded] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        command = p.Download(
            ref=ref, message_id=message.message_id, path=str(path), max_bytes=max_bytes
        )
        if not await self._write(command):
            self._pending.pop(ref, None)
            raise ChannelError("whatsapp: not connected (the worker is restarting)")
        try:
            done = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            self._pending.pop(ref, None)
            raise ChannelError(
                f"whatsapp: the file did not arrive within {self._timeout:.0f} s"
            ) from None
        return Path(done.path)

    def owns(self, ref: str | None) -> bool:
        return bool(ref) and ref in self._pending

    def on_downloaded(self, event: p.Downloaded) -> None:
        future = self._pending.pop(event.ref, None)
        if future is not None and not future.done():
            future.set_result(event)

    def on_failed(self, event: p.Error) -> None:
        future = self._pending.pop(event.ref or "", None)
        if future is not None and not future.done():
            future.set_exception(
                ChannelError(f"whatsapp: {event.message}", retryable=event.retryable)
            )

    def fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelError(f"whatsapp: {why}", retryable=True))
