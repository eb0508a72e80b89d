"""The JSON-lines protocol between ``WhatsAppChannel`` and its worker process.

One JSON object per line, UTF-8, ``"type"`` naming the message; the parent
writes :data:`Command` lines to the worker's stdin, the worker writes
:data:`Event` lines to its stdout (its logs go to stderr). Nothing here
imports neonize: the same protocol could front another WhatsApp engine, and
tests speak it with small fake workers.

Decoding is strict about what it needs and lenient about what it does not:
a line that is not a JSON object, has an unknown ``type``, lacks a required
field or has a field of the wrong type raises :class:`ProtocolError` naming
the problem; keys it does not know are ignored (a newer worker may add some).
See ``docs/whatsapp.md`` for the table of messages.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Union

from polpo.channels.base import Attachment, InboundMessage

#: Bumped when a message changes incompatibly.
PROTOCOL_VERSION = 1
#: The longest line either side accepts (a 100k-character message fits easily).
MAX_LINE_BYTES = 4 * 1024 * 1024


class ProtocolError(ValueError):
    """A line from the other side that is not a valid protocol message."""


# -- commands (parent → worker) ----------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Connect with the stored credentials, or start a QR login when there are none."""

    TYPE: ClassVar[str] = "connect"
    #: ask for a pairing code for this number instead of showing QR codes
    phone: str | None = None


@dataclass(frozen=True)
class PairPhone:
    """Link by phone number: the worker answers with ``pair_code``."""

    TYPE: ClassVar[str] = "pair_phone"
    phone: str


@dataclass(frozen=True)
class SendText:
    """Send ``text`` to ``chat`` (a JID); the worker answers ``sent`` or ``error`` with ``ref``."""

    TYPE: ClassVar[str] = "send_text"
    ref: str
    chat: str
    text: str
    reply_to: str | None = None
    #: the id the outbox assigned this part; sent again after a crash with the same
    #: id, the worker answers from its ledger instead of sending twice
    message_id: str | None = None


@dataclass(frozen=True)
class Typing:
    TYPE: ClassVar[str] = "typing"
    chat: str
    on: bool


@dataclass(frozen=True)
class MarkRead:
    TYPE: ClassVar[str] = "mark_read"
    chat: str
    #: the sender's JID (in groups, the participant)
    sender: str
    message_ids: list[str]
    #: when they were read, seconds since the epoch (0: now)
    timestamp: float


@dataclass(frozen=True)
class Ack:
    """The parent stored the ``message`` event with this id; the worker may let it go.

    The worker journals every message before sending the event; the ack trims
    it from the journal. A worker that starts sends the unacknowledged ones
    again first (the gateway drops what it already has by message id).
    """

    TYPE: ClassVar[str] = "ack"
    message_id: str


@dataclass(frozen=True)
class Download:
    """Fetch the attachment of message ``message_id`` into ``path`` (a new file), if it
    is no bigger than ``max_bytes``; answered with ``downloaded`` or ``error`` (``ref``)."""

    TYPE: ClassVar[str] = "download"
    ref: str
    message_id: str
    path: str
    max_bytes: int


@dataclass(frozen=True)
class Logout:
    """Unlink this device on WhatsApp's side; answered with ``logged_out`` or ``error``."""

    TYPE: ClassVar[str] = "logout"
    ref: str = ""


@dataclass(frozen=True)
class Stop:
    """Disconnect and exit (the parent kills a worker that has not exited after 10 s)."""

    TYPE: ClassVar[str] = "stop"


Command = Union[  # noqa: UP007
    Connect, PairPhone, SendText, Typing, MarkRead, Ack, Download, Logout, Stop
]

# -- events (worker → parent) ------------------------------------------------------


@dataclass(frozen=True)
class Qr:
    """A QR code to show; valid ``seconds`` (WhatsApp rotates it: 60 s, then 20 s)."""

    TYPE: ClassVar[str] = "qr"
    code: str
    seconds: int = 20


@dataclass(frozen=True)
class PairCode:
    """The 8-character code to type on the phone (Linked devices → Link with phone number)."""

    TYPE: ClassVar[str] = "pair_code"
    code: str


@dataclass(frozen=True)
class Paired:
    """The phone accepted the link; WhatsApp now restarts the connection once."""

    TYPE: ClassVar[str] = "paired"
    phone: str
    jid: str = ""
    business_name: str = ""


@dataclass(frozen=True)
class Connected:
    TYPE: ClassVar[str] = "connected"
    phone: str
    jid: str = ""
    lid: str | None = None
    push_name: str | None = None


@dataclass(frozen=True)
class Disconnected:
    """The connection dropped; the engine is reconnecting on its own."""

    TYPE: ClassVar[str] = "disconnected"
    reason: str = ""


@dataclass(frozen=True)
class Degraded:
    """WhatsApp stopped answering keepalive pings. The connection often recovers on
    its own (whatsmeow forces a reconnect only after minutes of failures), so
    sends are still attempted; ``restored`` or ``disconnected`` follows."""

    TYPE: ClassVar[str] = "degraded"
    reason: str = ""


@dataclass(frozen=True)
class Restored:
    """Keepalive pings are answered again after ``degraded``."""

    TYPE: ClassVar[str] = "restored"


@dataclass(frozen=True)
class LoggedOut:
    """The device was unlinked (from the phone, or by ``logout``): credentials are void."""

    TYPE: ClassVar[str] = "logged_out"
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class Replaced:
    """Another client connected with these credentials; the worker stops, no fight."""

    TYPE: ClassVar[str] = "replaced"


@dataclass(frozen=True)
class MessageReceived:
    """One inbound message, already normalised (``InboundMessage.to_dict()``).

    The parent answers with ``ack`` once the gateway has stored it.
    """

    TYPE: ClassVar[str] = "message"
    message: dict[str, Any]

    def inbound(self) -> InboundMessage:
        return inbound_from_wire(self.message)


@dataclass(frozen=True)
class Receipt:
    """Delivery/read receipts for messages we sent."""

    TYPE: ClassVar[str] = "receipt"
    chat: str
    message_ids: list[str]
    kind: str = "delivered"


@dataclass(frozen=True)
class Sent:
    """``send_text`` ``ref`` went out as WhatsApp message ``message_id``."""

    TYPE: ClassVar[str] = "sent"
    ref: str
    message_id: str
    timestamp: float = 0.0


@dataclass(frozen=True)
class Downloaded:
    """``download`` ``ref`` is in ``path``: ``size`` bytes."""

    TYPE: ClassVar[str] = "downloaded"
    ref: str
    path: str
    size: int


@dataclass(frozen=True)
class Error:
    """Something failed. With ``ref``: that command failed. ``fatal``: the worker
    exits next; ``retryable``: trying again later (or a restart) may work."""

    TYPE: ClassVar[str] = "error"
    message: str
    ref: str | None = None
    code: str = "error"
    retryable: bool = True
    fatal: bool = False


Event = Union[  # noqa: UP007
    Qr,
    PairCode,
    Paired,
    Connected,
    Disconnected,
    Degraded,
    Restored,
    LoggedOut,
    Replaced,
    MessageReceived,
    Receipt,
    Sent,
    Downloaded,
    Error,
]

COMMANDS: dict[str, type[Any]] = {
    c.TYPE: c for c in (Connect, PairPhone, SendText, Typing, MarkRead, Ack, Download, Logout, Stop)
}
EVENTS: dict[str, type[Any]] = {
    e.TYPE: e
    for e in (
        Qr,
        PairCode,
        Paired,
        Connected,
        Disconnected,
        Degraded,
        Restored,
        LoggedOut,
        Replaced,
        MessageReceived,
        Receipt,
        Sent,
        Downloaded,
        Error,
    )
}


# -- encoding --------------------------------------------------------------------------


def encode(message: Command | Event) -> str:
    """One protocol line, newline included."""
    # Shallow on purpose: asdict() deep-copies a message's payload for nothing.
    data = {"type": message.TYPE, **vars(message)}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def decode_command(line: str | bytes) -> Command:
    return typing.cast(Command, _decode(line, COMMANDS, "command"))


def decode_event(line: str | bytes) -> Event:
    return typing.cast(Event, _decode(line, EVENTS, "event"))


def _decode(line: str | bytes, table: dict[str, type[Any]], what: str) -> Any:
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError(f"{what} line too long ({len(line)} bytes)")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{what} line is not UTF-8: {e}") from None
    text = line.strip()
    if not text:
        raise ProtocolError(f"empty {what} line")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ProtocolError(f"{what} line is not JSON ({e}): {_excerpt(text)}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what} line is not a JSON object: {_excerpt(text)}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f'{what} line has no "type": {_excerpt(text)}')
    cls = table.get(kind)
    if cls is None:
        raise ProtocolError(f'unknown {what} type "{kind}"; known: {", ".join(sorted(table))}')
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        hint = _hints(cls)[f.name]
        if f.name not in data:
            if _has_default(f):
                continue
            raise ProtocolError(f'{what} "{kind}" is missing "{f.name}"')
        value = data[f.name]
        if not _matches(value, hint):
            raise ProtocolError(
                f'{what} "{kind}": "{f.name}" must be {_describe(hint)}; got {_excerpt(json.dumps(value))}'
            )
        kwargs[f.name] = list(value) if isinstance(value, list) else value
    if cls is MessageReceived:
        inbound_from_wire(
            kwargs["message"]
        )  # validated here, so a bad one never reaches the gateway
    return cls(**kwargs)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _has_default(f: Any) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return False


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        return "a list of strings" if typing.get_args(hint)[0] is str else "a list"
    if origin is dict:
        return "an object"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


def _excerpt(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -- InboundMessage on the wire -----------------------------------------------------------

_INBOUND_REQUIRED: dict[str, Any] = {
    "channel": str,
    "peer": str,
    "chat_id": str,
    "message_id": str,
    "text": str,
    "timestamp": float,
}
_INBOUND_OPTIONAL: dict[str, Any] = {
    "display_name": str | None,
    "is_group": bool,
    "is_from_me": bool,
    "is_self_chat": bool,
    "quoted_id": str | None,
    "kind": str,
    "reaction": str | None,
    "target_id": str | None,
    "lid": str | None,
    "offline": bool,
    "attachment": dict[str, Any] | None,
}
_KINDS = ("text", "edit", "reaction", "media", "unsupported", "undecryptable")


def inbound_to_wire(message: InboundMessage) -> dict[str, Any]:
    """The ``message`` event's payload: ``InboundMessage.to_dict()``, without its deep copy."""
    data = dict(vars(message))
    if message.attachment is not None:
        data["attachment"] = dict(vars(message.attachment))
    return data


def inbound_from_wire(data: dict[str, Any]) -> InboundMessage:
    """``InboundMessage.to_dict()`` back into the dataclass, checking every field."""
    for name, hint in _INBOUND_REQUIRED.items():
        if name not in data:
            raise ProtocolError(f'message event is missing "message.{name}"')
        if not _matches(data[name], hint):
            raise ProtocolError(f'message event: "message.{name}" must be {_describe(hint)}')
    for name, hint in _INBOUND_OPTIONAL.items():
        if name in data and not _matches(data[name], hint):
            raise ProtocolError(f'message event: "message.{name}" must be {_describe(hint)}')
    if data.get("kind", "text") not in _KINDS:
        raise ProtocolError(f'message event: "message.kind" must be one of {", ".join(_KINDS)}')
    if not data["message_id"]:
        raise ProtocolError('message event: "message.message_id" is empty')
    if data.get("attachment") is not None and Attachment.from_dict(data["attachment"]) is None:
        raise ProtocolError('message event: "message.attachment" is not an attachment')
    message = InboundMessage.from_dict(data)
    return message if isinstance(message.timestamp, float) else _float_ts(message)


def _float_ts(message: InboundMessage) -> InboundMessage:
    from dataclasses import replace

    return replace(message, timestamp=float(message.timestamp))


__all__ = [
    "COMMANDS",
    "EVENTS",
    "MAX_LINE_BYTES",
    "PROTOCOL_VERSION",
    "Ack",
    "Command",
    "Connect",
    "Connected",
    "Degraded",
    "Disconnected",
    "Download",
    "Downloaded",
    "Error",
    "Event",
    "LoggedOut",
    "Logout",
    "MarkRead",
    "MessageReceived",
    "PairCode",
    "PairPhone",
    "Paired",
    "ProtocolError",
    "Qr",
    "Receipt",
    "Replaced",
    "Restored",
    "SendText",
    "Sent",
    "Stop",
    "Typing",
    "decode_command",
    "decode_event",
    "encode",
    "inbound_from_wire",
    "inbound_to_wire",
]
