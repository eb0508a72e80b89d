"""Attachments on demand: the worker fetches a message's file into a path the channel picks.

Only what the gateway asks for is downloaded — an admitted peer's voice
note or picture — never a stranger's; a file bigger than the caller's bound
is refused from the size the sender declared, before any byte is fetched.
Files are new (never overwritten), 0600, under the directory the caller
gives (``.polpo/media/`` in ``polpo serve``).
"""

from __future__ import annotations

from pathlib import Path

from polpo.channels.attachments import attachment_path
from polpo.channels.base import InboundMessage
from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.requests import Requests, Writer
from polpo.errors import ChannelError


class Downloads:
    """``download`` commands in flight, completed by the worker's answers."""

    def __init__(self, *, write: Writer, timeout: float) -> None:
        self._timeout = timeout
        self._requests: Requests[p.Downloaded] = Requests("d", write)

    async def fetch(self, message: InboundMessage, directory: Path, max_bytes: int) -> Path:
        if message.attachment is None:
            raise ChannelError("whatsapp: that message carries no file", retryable=False)
        path = attachment_path(directory, message)
        if path.exists():
            return path  # fetched before (a replayed message): the same file
        done = await self._requests.ask(
            lambda ref: p.Download(
                ref=ref, message_id=message.message_id, path=str(path), max_bytes=max_bytes
            ),
            self._timeout,
            "the file did not arrive",
        )
        return Path(done.path)

    def owns(self, ref: str | None) -> bool:
        return self._requests.owns(ref)

    def on_downloaded(self, event: p.Downloaded) -> None:
        self._requests.answer(event.ref, event)

    def on_failed(self, event: p.Error) -> None:
        self._requests.fail(event)

    def fail_pending(self, why: str) -> None:
        self._requests.fail_all(why)
