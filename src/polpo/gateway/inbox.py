"""The durable inbox: an inbound message is a row before anything else happens.

A message is stored (:func:`store_message`) before the channel may acknowledge it;
a unique ``(channel, message_id)`` drops duplicates, also across restarts.
It leaves the ``received`` state in one of two ways: :func:`mark` (ignored,
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


async def store_message(
    tx: Tx, message: InboundMessage, *, owner: str | None, max_age: float | None
) -> Stored | None:
    """Insert ``message``; None if it is a duplicate. An ``offline`` message older than
    ``max_age`` seconds is stored already ignored."""
    status: InboxStatus = "received"
    outcome = None
    if message.offline and max_age is not None and tx.now - message.timestamp > max_age:
        status, outcome = "ignored", "offline: older than offlineMaxAgeMinutes"
    inbox_id = await store.insert(
        tx.conn,
        channel=message.channel,
        message_id=message.message_id,
        peer_id=f"{message.channel}:{message.peer}",
        chat_id=message.chat_id,
        text=message.text,
        payload=message.to_payload(),
        sent_at=message.timestamp,
        now=tx.now,
        status=status,
        outcome=outcome,
        owner=owner,
    )
    return None if inbox_id is None else Stored(inbox_id, status == "received")


async def mark(tx: Tx, inbox_id: int, status: InboxStatus, outcome: str | None) -> None:
    await store.mark(tx.conn, inbox_id, status, outcome, tx.now)


async def unfinished(conn: Connection, owner: str | None) -> list[Unfinished]:
    """Rows of ``owner`` still ``received``, oldest first (to resume after a restart)."""
    out = []
    for inbox_id, payload in await store.unfinished(conn, owner):
        try:
            message: InboundMessage | None = InboundMessage.from_dict(payload)
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
    await mark(tx, end.inbox_id, end.status, end.outcome)
    return row_id


def sanitize(message: InboundMessage) -> InboundMessage:
    """Make any message storable: valid Unicode, strings where strings belong, an id."""
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
