"""``MemoryChannel``: a real channel whose network is a list in memory.

Like httpx's ``MockTransport``, it plugs into the gateway exactly as
WhatsApp and Telegram do. Tests, ``polpo simulate``, ``polpo chat`` and the
benchmark use it; so can anyone embedding Polpo. ``receive`` plays a peer
writing in; ``sent`` holds what the gateway sent out; ``disconnect``,
``reconnect`` and ``fail_sends`` play a network in trouble.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polpo.channels.attachments import attachment_path, write_new_file
from polpo.channels.base import (
    Attachment,
    ChannelListener,
    ChannelStatus,
    InboundMessage,
    OutboundMessage,
    SendResult,
    TextFormat,
)
from polpo.clock import SYSTEM_CLOCK, Clock
from polpo.errors import ChannelError

#: Longest text per message for each format (as the real channels allow).
DEFAULT_MAX_LENGTH: dict[str, int] = {"whatsapp": 4000, "telegram": 4096, "plain": 4096}


@dataclass(frozen=True)
class SentMessage:
    """One message the channel "sent": what it was asked to send and the id it got."""

    message: OutboundMessage
    message_id: str

    @property
    def chat_id(self) -> str:
        return self.message.chat_id

    @property
    def text(self) -> str:
        return self.message.text


class MemoryChannel:
    """An in-memory channel. ``name`` is the channel type it plays ("memory",
    "whatsapp", "telegram"): peer ids are ``<name>:<peer>``."""

    def __init__(
        self,
        name: str = "memory",
        *,
        text_format: TextFormat | None = None,
        max_text_length: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_send: Callable[[OutboundMessage], None] | None = None,
        mint_ids: bool = False,
    ) -> None:
        self.name = name
        #: play a network whose sender chooses message ids (WhatsApp): see ``new_message_id``
        self.mint_ids = mint_ids
        fmt: TextFormat = text_format or (name if name in ("whatsapp", "telegram") else "plain")  # type: ignore[assignment]
        self.text_format: TextFormat = fmt
        self.max_text_length = max_text_length or DEFAULT_MAX_LENGTH[fmt]
        self.clock = clock
        self.on_send = on_send
        self.sent: list[SentMessage] = []
        self.typing_events: list[tuple[str, bool]] = []
        self.read: list[InboundMessage] = []
        #: ids of the messages whose files the gateway fetched
        self.fetched: list[str] = []
        self._files: dict[str, bytes] = {}
        self._listener: ChannelListener | None = None
        self._state = "stopped"
        self._detail: str | None = None
        self._fail: list[ChannelError] = []
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        # ids unique across instances: a new channel on the same database is no duplicate
        self._token = secrets.token_hex(4)

    # -- Channel -------------------------------------------------------------

    async def start(self, listener: ChannelListener) -> None:
        self._listener = listener
        await self._set_state("connected")

    async def stop(self) -> None:
        self._state = "stopped"
        self._listener = None

    def new_message_id(self) -> str | None:
        """With ``mint_ids``, an id the outbox assigns before sending (as WhatsApp's
        sender does); else None: this channel picks the id when it sends."""
        if not self.mint_ids:
            return None
        return f"{self.name}-out-{self._token}-{next(self._ids)}"

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._state != "connected":
            raise ChannelError(f"{self.name} is {self._state}", retryable=True)
        if self._fail:
            raise self._fail.pop(0)
        if self.on_send is not None:
            self.on_send(message)
        message_id = message.message_id or f"{self.name}-out-{self._token}-{next(self._ids)}"
        sent = SentMessage(message, message_id)
        self.sent.append(sent)
        async with self._changed:
            self._changed.notify_all()
        return SendResult(sent.message_id)

    async def typing(self, chat_id: str, on: bool) -> None:
        self.typing_events.append((chat_id, on))

    async def mark_read(self, message: InboundMessage) -> None:
        self.read.append(message)

    def status(self) -> ChannelStatus:
        return ChannelStatus(self.name, self._state, self._detail)

    # -- playing the peers ---------------------------------------------------

    def message(
        self,
        peer: str,
        text: str,
        *,
        chat_id: str | None = None,
        message_id: str | None = None,
        display_name: str | None = None,
        timestamp: float | None = None,
        **fields: Any,
    ) -> InboundMessage:
        """An InboundMessage as ``peer`` (the external id, e.g. phone digits) would send it."""
        return InboundMessage(
            channel=self.name,
            peer=peer,
            chat_id=chat_id if chat_id is not None else _default_chat(self.name, peer),
            message_id=message_id or f"{self.name}-in-{self._token}-{next(self._ids)}",
            text=text,
            timestamp=self.clock.now() if timestamp is None else timestamp,
            display_name=display_name,
            **fields,
        )

    async def deliver(self, message: InboundMessage) -> None:
        """Hand ``message`` to the gateway; returns once it is stored."""
        if self._listener is None:
            raise ChannelError(f"{self.name} is not started", retryable=False)
        await self._listener.on_message(message)

    async def receive(self, peer: str, text: str, **fields: Any) -> InboundMessage:
        """``peer`` writes ``text``; returns the message once the gateway has stored it."""
        message = self.message(peer, text, **fields)
        await self.deliver(message)
        return message

    def file_message(
        self, peer: str, data: bytes, attachment: Attachment, text: str = "", **fields: Any
    ) -> InboundMessage:
        """A message from ``peer`` carrying a file (a voice note, a picture, a document)
        whose bytes are ``data``, with ``text`` as its caption; the gateway fetches the
        bytes with :meth:`fetch_attachment`, as it would from WhatsApp."""
        kind = "text" if text else "media"
        message = self.message(peer, text, kind=kind, attachment=attachment, **fields)
        self._files[message.message_id] = data
        return message

    async def receive_file(
        self, peer: str, data: bytes, attachment: Attachment, text: str = "", **fields: Any
    ) -> InboundMessage:
        """``peer`` sends a file; returns the message once the gateway has stored it."""
        message = self.file_message(peer, data, attachment, text, **fields)
        await self.deliver(message)
        return message

    async def fetch_attachment(
        self, message: InboundMessage, directory: Path, *, max_bytes: int
    ) -> Path:
        """The bytes given with :meth:`file_message`, into a new 0600 file in ``directory``
        (:class:`~polpo.channels.base.FetchesAttachments`, as WhatsApp's)."""
        data = self._files.get(message.message_id)
        if message.attachment is None or data is None:
            raise ChannelError(f"{self.name}: that message carries no file", retryable=False)
        declared = message.attachment.size or len(data)
        if max(declared, len(data)) > max_bytes:
            size = max(declared, len(data))
            raise ChannelError(
                f"{self.name}: the file is too big ({size} bytes; at most {max_bytes})",
                retryable=False,
            )
        path = attachment_path(directory, message)
        if not path.exists():
            write_new_file(path, data)
        self.fetched.append(message.message_id)
        return path

    # -- playing the network ---------------------------------------------------

    async def disconnect(self, state: str = "disconnected", detail: str | None = None) -> None:
        """The connection drops: sends fail (retryable) until :meth:`reconnect`."""
        self._detail = detail
        await self._set_state(state)

    async def reconnect(self) -> None:
        self._detail = None
        await self._set_state("connected")

    def fail_sends(
        self, count: int = 1, *, retryable: bool = True, message: str = "send failed"
    ) -> None:
        """The next ``count`` sends raise :class:`ChannelError`."""
        self._fail.extend(ChannelError(message, retryable=retryable) for _ in range(count))

    # -- observing -------------------------------------------------------------

    def sent_to(self, chat_id: str) -> list[str]:
        return [s.text for s in self.sent if s.chat_id == chat_id]

    async def wait_sent(self, count: int, within: float = 5.0) -> list[SentMessage]:
        """Wait until at least ``count`` messages were sent in total; returns them all."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.sent) >= count), within)
        return list(self.sent)

    async def _set_state(self, state: str) -> None:
        self._state = state
        if self._listener is not None:
            await self._listener.on_status(self.status())


def _default_chat(channel: str, peer: str) -> str:
    if channel == "whatsapp":
        if peer.startswith("lid:"):
            return f"{peer[4:]}@lid"
        return f"{peer}@s.whatsapp.net"
    return peer


__all__ = ["DEFAULT_MAX_LENGTH", "MemoryChannel", "SentMessage"]
