"""The durable inbox: an inbound message is a row before anything else happens.

A message is stored (:func:`store_message`) before the channel may acknowledge it;
a unique ``(channel, message_id)`` drops duplicates, also across restarts.
Its text is cut to 64 KiB before that (:func:`sanitize`) and stored once. A
sender who is not admitted leaves only what dedupe needs (:func:`store_trace`,
:func:`forget`): channel, message id, times, outcome. A row leaves the ``received`` state in one of two ways: :func:`mark` (ignored,
failed) or :func:`finish` — the turn's session changes, its reply row in the
outbox and the inbox row ``done``, all in one transaction, so a crash never
yields two replies for one finished turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from polpo.channels.base import InboundMessage, sanitize_attachment
from polpo.gateway.sessions import Session, SessionChanges
from polpo.store import inbox as store
from polpo.store.connection import Connection
from polpo.store.outbox import enqueue
from polpo.store.tx import Tx

InboxStatus = Literal["received", "done", "ignored", "failed"]


@dataclass(frozen=True)
class Reply:
    """A reply to commit to the outbox (buttons as ``{"label", "command"}``)."""

    text: str
    buttons: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class Stored:
    """A message now in the inbox."""

    inbox_id: int
    #: False: stored as ignored (offline catch-up too old), nothing more to do
    received: bool


@dataclass(frozen=True)
class Unfinished:
    """A row still ``received``: its message, or None if the payload cannot be read."""

    inbox_id: int
    message: InboundMessage | None


@dataclass(frozen=True)
class Finish:
    """How one turn ends: everything :func:`finish` commits together."""

    inbox_id: int
    message: InboundMessage
    status: InboxStatus
    outcome: str
    reply: Reply | None = None
    #: the sender's peer id (on the reply row)
    peer_id: str | None = None
    #: the person whose session ``changes`` apply to
    canonical: str | None = None
    changes: SessionChanges | None = None
    #: the session the turn read (its id saves a lookup)
    session: Session | None = None
    idle_seconds: float = 3600.0
    owner: str | None = None
    #: its sender was not admitted: keep only what dedupe needs (:func:`forget`)
    forget: bool = False


def too_old(message: InboundMessage, max_age: float | None, now: float) -> bool:
    """An ``offline`` message (delivered after a reconnect) older than ``max_age`` seconds:
    stored already ignored, never answered."""
    return message.offline and max_age is not None and now - message.timestamp > max_age


async def store_message(tx: Tx, message: InboundMessage, *, owner: str | None) -> Stored | None:
    """Insert an admitted sender's ``message``, to be processed; None if it is a duplicate.

    The text is stored once, in its column; the payload holds the other fields."""
    payload = message.to_payload()
    del payload["text"]
    inbox_id = await store.insert(
        tx.conn,
        channel=message.channel,
        message_id=message.message_id,
        peer_id=f"{message.channel}:{message.peer}",
        chat_id=message.chat_id,
        text=message.text,
        payload=payload,
        sent_at=message.timestamp,
        now=tx.now,
        status="received",
        outcome=None,
        owner=owner,
    )
    return None if inbox_id is None else Stored(inbox_id, True)


async def store_trace(
    tx: Tx, message: InboundMessage, *, owner: str | None, ignored: str | None = None
) -> Stored | None:
    """Insert only what dedupe needs of ``message`` — channel, message id, times, and
    later its outcome — for a sender who is not admitted; None if it is a duplicate.

    ``ignored``: stored already ignored, with that outcome; otherwise ``received``,
    for admission to finish it in the same transaction (a pairing code, a mark)."""
    inbox_id = await store.insert(
        tx.conn,
        channel=message.channel,
        message_id=message.message_id,
        peer_id="",
        chat_id="",
        text="",
        payload={},
        sent_at=message.timestamp,
        now=tx.now,
        status="received" if ignored is None else "ignored",
        outcome=ignored,
        owner=owner,
    )
    return None if inbox_id is None else Stored(inbox_id, ignored is None)


async def mark(tx: Tx, inbox_id: int, status: InboxStatus, outcome: str | None) -> None:
    await store.mark(tx.conn, inbox_id, status, outcome, tx.now)


async def forget(tx: Tx, inbox_id: int, status: InboxStatus, outcome: str | None) -> None:
    """Mark the row and keep only what dedupe needs: its sender was not admitted."""
    await store.forget(tx.conn, inbox_id, status, outcome, tx.now)


async def unfinished(conn: Connection, owner: str | None) -> list[Unfinished]:
    """Rows of ``owner`` still ``received``, oldest first (to resume after a restart)."""
    out = []
    for inbox_id, text, payload in await store.unfinished(conn, owner):
        try:
            # rows stored before the text was kept once have it in the payload too
            message: InboundMessage | None = InboundMessage.from_dict({**payload, "text": text})
        except Exception:
            message = None
        out.append(Unfinished(inbox_id, message))
    return out


async def finish(tx: Tx, end: Finish) -> int | None:
    """Session changes, the reply in the outbox and the inbox row done: all or nothing.

    Returns the reply's outbox row id (None: no reply, or one was already there)."""
    row_id = None
    if end.changes is not None and end.canonical is not None:
        await end.changes.apply(tx.conn, end.canonical, tx.now, end.idle_seconds, end.session)
    if end.reply is not None and end.reply.text.strip():
        msg = end.message
        row_id = await enqueue(
            tx.conn,
            channel=msg.channel,
            chat_id=msg.chat_id,
            text=end.reply.text,
            now=tx.now,
            peer_id=end.peer_id,
            inbox_id=end.inbox_id,
            dedupe_key=f"inbox:{end.inbox_id}",
            buttons=end.reply.buttons,
            owner=end.owner,
        )
    if end.forget:
        await forget(tx, end.inbox_id, end.status, end.outcome)
    else:
        await mark(tx, end.inbox_id, end.status, end.outcome)
    return row_id


def sanitize(message: InboundMessage) -> InboundMessage:
    """Make any message storable: valid Unicode, strings where strings belong, an id,
    a text of at most :data:`MAX_TEXT_BYTES` (``cut_from`` says it was cut) and a
    display name of at most :data:`MAX_NAME_CHARS`."""
    changes: dict[str, Any] = {}
    for name in _STR_FIELDS:
        value = getattr(message, name)
        if value is None:
            if name in _REQUIRED:
                changes[name] = ""
            continue
        if not isinstance(value, str):
            value = str(value)
        fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        fixed = fixed.replace("\x00", "")
        if fixed != getattr(message, name):
            changes[name] = fixed
    text = changes.get("text", message.text)
    if len(text) > MAX_TEXT_BYTES // 4 and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        changes["text"] = cap_text(text)
        changes["cut_from"] = len(text)
    shown = changes.get("display_name", message.display_name)
    if shown is not None and len(shown) > MAX_NAME_CHARS:
        changes["display_name"] = shown[:MAX_NAME_CHARS]
    if message.cut_from is not None and not isinstance(message.cut_from, int):
        changes["cut_from"] = None
    if not (changes.get("message_id", message.message_id) or "").strip():
        import uuid

        changes["message_id"] = f"noid-{uuid.uuid4().hex}"
    ts = message.timestamp
    if (
        isinstance(ts, bool)
        or not isinstance(ts, int | float)
        or ts != ts
        or ts in (float("inf"), float("-inf"))
    ):
        changes["timestamp"] = 0.0
    if not isinstance(message.kind, str):
        changes["kind"] = "unsupported"
    for flag in ("is_group", "is_from_me", "is_self_chat", "offline"):
        if not isinstance(getattr(message, flag), bool):
            changes[flag] = bool(getattr(message, flag))
    if message.attachment is not None:
        attachment = sanitize_attachment(message.attachment)
        if attachment != message.attachment:
            changes["attachment"] = attachment
    return replace(message, **changes) if changes else message


def cap_text(text: str, limit: int | None = None) -> str:
    """``text`` cut to at most ``limit`` (default :data:`MAX_TEXT_BYTES`) UTF-8 bytes,
    on a character boundary."""
    limit = MAX_TEXT_BYTES if limit is None else limit
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


#: the longest inbound text stored, in UTF-8 bytes: the rest is cut before anything is
#: written (an admitted sender is told it was too long; a stranger's text is not stored)
MAX_TEXT_BYTES = 64 * 1024
#: the longest display name kept (a pairing request stores a stranger's)
MAX_NAME_CHARS = 256

_STR_FIELDS: Sequence[str] = (
    "channel",
    "peer",
    "chat_id",
    "message_id",
    "text",
    "display_name",
    "quoted_id",
    "reaction",
    "target_id",
    "lid",
)
_REQUIRED = frozenset({"channel", "peer", "chat_id", "message_id", "text"})
