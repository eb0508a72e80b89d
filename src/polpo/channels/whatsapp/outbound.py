"""Outbound WhatsApp: sends paced per chat, "typing…", read marks, and chat ids as JIDs.

Each send is a ``send_text`` command with a ``ref``; the worker answers
``sent`` (with WhatsApp's message id) or ``error`` with the same ``ref``, and
:meth:`Outbound.settle` completes the waiting send. While the channel is not
connected a send raises ``ChannelError(retryable=True)``: the gateway's
outbox keeps the row and sends it once the channel says ``connected`` again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from polpo.channels.base import InboundMessage, OutboundMessage, SendResult
from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.requests import Requests, Writer
from polpo.channels.whatsapp.timing import Timing
from polpo.errors import ChannelError

#: the longest text one WhatsApp message carries here (the gateway splits longer replies)
MAX_TEXT = 4000
#: how many sent message ids are remembered to recognise their echoes (self-chat)
_SENT_MEMORY = 5000


@dataclass(frozen=True)
class OutboundOptions:
    """Timeouts and pacing of what the channel sends."""

    #: a send the worker has not answered within this is failed (and retried by the outbox)
    send_timeout: float = 60.0
    #: the least time between two messages to one chat
    pace_seconds: float = 1.0
    #: "typing…" is sent again this often (WhatsApp drops it after ~25 s) …
    typing_interval: float = 20.0
    #: … for at most this long
    typing_max_seconds: float = 300.0


class Outbound:
    """What the channel sends through its current worker.

    ``write`` sends a command to the current worker (False when there is
    none); ``ready`` raises ``ChannelError(retryable=True)`` unless the
    channel is connected; ``connected`` says whether it is.
    """

    def __init__(
        self,
        options: OutboundOptions,
        timing: Timing,
        *,
        write: Writer,
        ready: Callable[[], None],
        connected: Callable[[], bool],
    ) -> None:
        self.options = options
        self._timing = timing
        self._write = write
        self._ready = ready
        self._connected = connected
        self._requests: Requests[p.Sent] = Requests("s", write)
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._chat_locks: dict[str, asyncio.Lock] = {}
        self._last_sent: dict[str, float] = {}
        self._typing: dict[str, asyncio.Task[None]] = {}

    async def send(self, message: OutboundMessage) -> SendResult:
        chat = to_jid(message.chat_id)
        if not valid_jid(chat):
            raise ChannelError(
                f"whatsapp: {message.chat_id!r} is not a WhatsApp chat", retryable=False
            )
        lock = self._chat_locks.setdefault(chat, asyncio.Lock())
        async with lock:
            self._ready()
            last = self._last_sent.get(chat)
            pace = self.options.pace_seconds
            if last is not None and pace > 0:
                wait = pace - (self._timing.clock.now() - last)
                if wait > 0:
                    await self._timing.sleep(wait)
                self._ready()
            timeout = self.options.send_timeout
            sent = await self._requests.ask(
                lambda ref: p.SendText(
                    ref=ref,
                    chat=chat,
                    text=message.text,
                    reply_to=message.reply_to,
                    message_id=message.message_id,
                ),
                timeout,
                "no answer from WhatsApp",
            )
            self._last_sent[chat] = self._timing.clock.now()
            return SendResult(message_id=sent.message_id)

    def on_sent(self, event: p.Sent) -> None:
        """The worker sent ``event.ref``: remember its id (echoes) and complete the send."""
        self._remember_sent(event.message_id)
        self._requests.answer(event.ref, event)

    def on_failed(self, event: p.Error) -> None:
        """The worker could not run the command ``event.ref``."""
        self._requests.fail(event)

    def fail_pending(self, why: str) -> None:
        """The worker is gone: every send waiting for it fails (retryable)."""
        self._requests.fail_all(why)

    def is_own_echo(self, message: InboundMessage) -> bool:
        """A message the channel itself sent, coming back (the owner's self-chat)."""
        return message.is_from_me and message.message_id in self._sent_ids

    async def typing(self, chat_id: str, on: bool) -> None:
        """ "typing…" in ``chat_id``, refreshed until turned off."""
        chat = to_jid(chat_id)
        running = self._typing.pop(chat, None)
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        if on:
            if self._connected():
                self._typing[chat] = asyncio.create_task(
                    self._keep_typing(chat), name=f"whatsapp-typing-{chat}"
                )
        elif self._connected():
            await self._write(p.Typing(chat=chat, on=False))

    async def _keep_typing(self, chat: str) -> None:
        clock = self._timing.clock
        started = clock.now()
        while clock.now() - started < self.options.typing_max_seconds:
            await self._write(p.Typing(chat=chat, on=True))
            await self._timing.sleep(self.options.typing_interval)

    async def stop_typing(self) -> None:
        typing, self._typing = list(self._typing.values()), {}
        for t in typing:
            t.cancel()
        await asyncio.gather(*typing, return_exceptions=True)

    async def mark_read(self, message: InboundMessage) -> None:
        """Blue ticks for a message the gateway has processed (only while connected)."""
        # reactions get no blue ticks on WhatsApp; what could not be read is not "read"
        if not self._connected() or message.kind in ("reaction", "undecryptable"):
            return
        message_id = message.message_id.split(":edit:", 1)[0]
        await self._write(
            p.MarkRead(
                chat=to_jid(message.chat_id),
                sender=peer_jid(message.peer),
                message_ids=[message_id],
                timestamp=self._timing.clock.now(),  # when it was read, not when sent
            )
        )

    def _remember_sent(self, message_id: str) -> None:
        self._sent_ids[message_id] = None
        while len(self._sent_ids) > _SENT_MEMORY:
            self._sent_ids.popitem(last=False)


def mint_message_id(own: str | None, *, now: float, random_bytes: bytes) -> str:
    """A message id in WhatsApp's own format, made as whatsmeow's ``GenerateMessageID``
    makes them: ``3EB0`` and 18 upper-case hex digits of the SHA-256 of the time
    (8 bytes, big-endian seconds), the own number with ``@c.us``, and 16 random bytes."""
    data = int(now).to_bytes(8, "big", signed=False)
    if own:
        data += f"{own}@c.us".encode()
    data += random_bytes
    return "3EB0" + hashlib.sha256(data).hexdigest()[:18].upper()


def to_jid(chat_id: str) -> str:
    """A chat id as the worker wants it: a JID (bare numbers are phone chats)."""
    chat = chat_id.strip()
    if chat.startswith("whatsapp:"):
        chat = chat[len("whatsapp:") :]
    if chat.startswith("lid:"):
        return f"{chat[4:]}@lid"
    if "@" not in chat:
        digits = "".join(c for c in chat if c.isdigit())
        return f"{digits}@s.whatsapp.net"
    return chat


_SERVERS = ("s.whatsapp.net", "lid", "g.us", "c.us", "hosted", "hosted.lid")


def valid_jid(jid: str) -> bool:
    """A JID a message can be sent to: ``digits@server`` (groups: ``digits-digits@g.us``)."""
    user, _, server = jid.partition("@")
    if server not in _SERVERS or not user:
        return False
    return user.replace("-", "").isdigit() and user.isascii()


def peer_jid(peer: str) -> str:
    """The JID of a peer's external id (``39123…`` or ``lid:…``)."""
    return to_jid(peer)
