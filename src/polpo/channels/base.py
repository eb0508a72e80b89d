"""The channel seam: a few methods every channel implements.

Like httpx's transport interface, it is small on purpose: ``MemoryChannel``
(tests, ``polpo simulate``, ``polpo chat``), ``WhatsAppChannel`` and
``TelegramChannel`` plug into the gateway the same way.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeGuard, runtime_checkable

MessageKind = Literal["text", "edit", "reaction", "media", "unsupported", "undecryptable"]
TextFormat = Literal["whatsapp", "telegram", "plain"]


MediaKind = Literal["voice", "audio", "image", "video", "document", "sticker"]
MEDIA_KINDS: tuple[str, ...] = ("voice", "audio", "image", "video", "document", "sticker")


@dataclass(frozen=True)
class Attachment:
    """What a message carries besides text: a voice note, a picture, a file.

    Only its description travels with the message; the bytes are fetched on
    demand (``fetch_attachment`` on channels that can), so nothing of a
    sender who is not admitted is ever downloaded.
    """

    kind: MediaKind
    mime: str = ""
    #: bytes, as the sender declared them
    size: int = 0
    #: the length of a voice note, audio or video
    seconds: int = 0
    #: a document's file name, as the sender gave it
    name: str = ""
    #: the channel's own handle for fetching the file (Telegram's ``file_id``)
    ref: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> Attachment | None:
        """Back from ``asdict``; None for anything that is not a valid description."""
        if not isinstance(data, dict) or data.get("kind") not in MEDIA_KINDS:
            return None
        fields = {"mime": str, "size": int, "seconds": int, "name": str, "ref": str}
        values: dict[str, Any] = {"kind": data["kind"]}
        for name, kind in fields.items():
            value = data.get(name)
            if isinstance(value, kind) and not isinstance(value, bool):
                values[name] = value
        return cls(**values)


def sanitize_attachment(value: object) -> Attachment | None:
    """Any attachment a channel handed over, made storable: an :class:`Attachment`
    with valid Unicode and no NUL in its strings, or None when it is not one."""
    found = Attachment.from_dict(asdict(value) if isinstance(value, Attachment) else value)
    if found is None:
        return None

    def clean(text: str) -> str:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").replace("\0", "")

    return replace(found, mime=clean(found.mime), name=clean(found.name))


@dataclass(frozen=True)
class InboundMessage:
    """One message as it arrived, channel-neutral.

    ``peer`` is the sender's external id on its channel (WhatsApp: phone
    digits, or ``lid:<lid>`` when unresolved; Telegram: the numeric user id);
    the gateway prefixes the channel to make the peer id.
    """

    channel: str
    peer: str
    chat_id: str
    message_id: str
    text: str
    #: when the sender sent it, seconds since the epoch
    timestamp: float
    display_name: str | None = None
    is_group: bool = False
    #: sent by the account the channel is logged in as (WhatsApp "from me")
    is_from_me: bool = False
    #: the account owner's "message yourself" chat
    is_self_chat: bool = False
    quoted_id: str | None = None
    kind: MessageKind = "text"
    #: for reactions: the emoji ("" when a reaction is removed)
    reaction: str | None = None
    #: the message reacted to or edited
    target_id: str | None = None
    #: the sender's LID when the phone number is also known (lets the gateway merge identities)
    lid: str | None = None
    #: delivered late, after a reconnect (offline catch-up)
    offline: bool = False
    #: a voice note, picture or file the message carries (described, not downloaded)
    attachment: Attachment | None = None
    #: the text's length in characters as it arrived, when the gateway cut it to
    #: 64 KiB before storing it (the rest was never stored); None: stored whole
    cut_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_payload(self) -> dict[str, Any]:
        """``to_dict()`` without its deep copy (the inbox stores it on the hot path)."""
        data = dict(vars(self))
        if self.attachment is not None:
            data["attachment"] = dict(vars(self.attachment))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "attachment" in values:
            values["attachment"] = Attachment.from_dict(values["attachment"])
        return cls(**values)


@dataclass(frozen=True)
class Button:
    """A quick-reply button (Telegram inline keyboard); ``command`` is sent back as text."""

    label: str
    command: str


@dataclass(frozen=True)
class OutboundMessage:
    """Text ready for the channel (already formatted and split to its limits).

    ``message_id`` is the id the outbox assigned this part before sending it
    (from :meth:`Channel.new_message_id <MintsMessageIds.new_message_id>`).
    A channel that can choose ids must send with it: after a crash the
    outbox sends the part again with the same id, and the network drops the
    copy (WhatsApp). None: the network chooses the id (Telegram).
    """

    chat_id: str
    text: str
    reply_to: str | None = None
    buttons: tuple[Button, ...] = ()
    message_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What the channel says about a sent message: its id there (for reactions, edits)."""

    message_id: str | None = None


@dataclass(frozen=True)
class ChannelStatus:
    """Connection state as ``/status``, ``polpo whatsapp status`` and the API show it.

    ``state`` is one of: stopped, starting, connecting, waiting_for_login,
    connected, degraded (connected, but the network stopped answering
    keepalives: sends are still attempted), disconnected, logged_out,
    replaced, error.
    """

    channel: str
    state: str
    detail: str | None = None
    account: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        """Sends may go out: connected, or degraded (still connected as far as anyone knows)."""
        return self.state in ("connected", "degraded")


class MintsMessageIds(Protocol):
    """A channel whose sender chooses message ids (WhatsApp) implements this too.

    The outbox asks for each part's id *before* sending and stores it in the
    transaction that marks the part "sending"; a resend after a crash reuses
    it, so the recipient sees the message once. Optional: channels without
    it (Telegram) get ``message_id=None``; see :func:`new_message_id`.
    """

    def new_message_id(self) -> str | None:
        """A fresh id for an outbound message, or None when the network chooses ids."""
        ...


def new_message_id(channel: object) -> str | None:
    """``channel.new_message_id()`` when the channel has it, else None (the network
    chooses ids). Looked up, not required, so every ``Channel`` stays valid."""
    mint = getattr(channel, "new_message_id", None)
    if mint is None:
        return None
    found = mint()
    return str(found) if found is not None else None


class FetchesAttachments(Protocol):
    """A channel that can hand over a message's file (WhatsApp; ``MemoryChannel``).

    The gateway calls it for admitted peers only. The file is new, 0600, in
    ``directory`` (created 0700 if missing); one bigger than ``max_bytes`` is
    refused (raising :class:`~polpo.errors.ChannelError`), from its declared
    size when the channel knows it, before any byte is fetched."""

    async def fetch_attachment(
        self, message: InboundMessage, directory: Path, *, max_bytes: int
    ) -> Path: ...


def can_fetch_attachments(channel: object) -> TypeGuard[FetchesAttachments]:
    """Whether ``channel`` implements :class:`FetchesAttachments` (optional, like ids)."""
    return callable(getattr(channel, "fetch_attachment", None))


class ChannelListener(Protocol):
    """The gateway, as a channel sees it."""

    async def on_message(self, message: InboundMessage) -> None:
        """Called for every inbound message. Returns once it is stored durably;
        only then may the channel acknowledge it to its network."""
        ...

    async def on_status(self, status: ChannelStatus) -> None:
        """Called when the connection state changes (connected, logged out, …)."""
        ...


@runtime_checkable
class Channel(Protocol):
    #: the channel type, also the peer id prefix: "whatsapp", "telegram", "memory"
    name: str
    #: how replies are formatted, and the longest text one message may carry
    text_format: TextFormat
    max_text_length: int

    async def start(self, listener: ChannelListener) -> None:
        """Connect and begin delivering messages to ``listener``; returns once started."""
        ...

    async def stop(self) -> None: ...

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message. Raises :class:`polpo.errors.ChannelError` when it cannot
        (``retryable`` says whether the outbox should try again later)."""
        ...

    async def typing(self, chat_id: str, on: bool) -> None: ...

    async def mark_read(self, message: InboundMessage) -> None: ...

    def status(self) -> ChannelStatus: ...


async def show_typing(channel: Channel | None, chat_id: str, on: bool) -> None:
    """Turn "typing…" on or off in ``chat_id``; a failure is logged, never raised
    (typing is a nicety: no turn fails for it)."""
    if channel is None:
        return
    try:
        await channel.typing(chat_id, on)
    except Exception as e:
        logging.getLogger(__name__).debug("typing on %s failed: %s", channel.name, e)
