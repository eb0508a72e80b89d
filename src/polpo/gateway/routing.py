"""Routing an admitted message to what answers it.

A 👍/👎 reaction on an approval alert becomes ``/approve``/``/reject``; media
without a file (a contact, a location) gets "text only", a message the
channel could not decrypt "send it again"; a command (``/x``, Telegram
``/start`` = ``/help``) goes to :func:`polpo.gateway.commands.dispatch`; a
voice note, picture or file goes through :func:`polpo.gateway.media.prepare`
(answered there, or a chat turn with its transcript or pictures); other text
answers the session's pending question if there is one, else goes to the
chat agent. The result
is a :class:`Routed` (the reply and session changes to commit) or
:class:`Dropped` (nothing to answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polpo.channels.base import Channel, ChannelStatus, InboundMessage, show_typing
from polpo.config import GatewayConfig
from polpo.core.reactions import approval_vote
from polpo.gateway import commands, media
from polpo.gateway.admission import Admitted
from polpo.gateway.inbox import Reply
from polpo.gateway.sessions import Session, SessionChanges, open_session
from polpo.store import outbox
from polpo.store.batch import WriteBatcher
from polpo.store.tx import Tx

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.llm.base import Responder

log = logging.getLogger(__name__)

MEDIA_REPLY = "I can only read text for now. Please type your message."
#: a message the channel received but could not decrypt (WhatsApp, often right after relinking)
UNREADABLE_REPLY = "I couldn't read your last message — please send it again."
TOO_LONG_REPLY = (
    "That message is too long for me ({length:,} characters). "
    "Please send at most {limit:,} characters at a time."
)
#: Longest free text handed to the chat agent.
MAX_CHAT_CHARS = 16_000


@dataclass(frozen=True)
class Routed:
    """What answered the message: a reply (or None) and session changes to commit."""

    reply: Reply | None
    #: what happened, for the inbox row (``command /status``, ``chat``, …)
    outcome: str
    changes: SessionChanges
    #: the session the turn read (free text only)
    session: Session | None = None


@dataclass(frozen=True)
class Dropped:
    """Nothing answers this message (e.g. a reaction on something else)."""

    why: str


class Router:
    """Routes admitted messages of the gateway's channels."""

    def __init__(
        self,
        app: Polpo,
        batcher: WriteBatcher,
        channels: Mapping[str, Channel],
        *,
        responder: Callable[[], Responder],
        statuses: Callable[[], Sequence[ChannelStatus]],
        turns_of: Callable[[str], int],
    ) -> None:
        self._app = app
        self._batcher = batcher
        self._channels = channels
        self._responder = responder
        self._statuses = statuses
        self._turns_of = turns_of

    async def route(
        self, msg: InboundMessage, admitted: Admitted, gw: GatewayConfig
    ) -> Routed | Dropped:
        canonical = admitted.identity.canonical
        changes = SessionChanges()
        ctx = commands.CommandContext(
            app=self._app,
            peer_id=canonical,
            channel=msg.channel,
            chat_id=msg.chat_id,
            display_name=msg.display_name,
            is_admin=admitted.access.is_admin,
            now=self._app.clock.now(),
            session=changes,
            channel_statuses=self._statuses(),
        )
        if msg.kind == "reaction":
            command = await self._reaction_command(msg)
            if command is None:
                return Dropped("reaction not on an approval request")
            reply = await commands.dispatch(ctx, command)
            return Routed(_reply_of(reply), f"reaction: {command}", changes)
        if msg.cut_from is not None:
            # over 64 KiB: only its start was stored; neither a command nor the model
            # gets a text cut short (the sender is told, and can send it in parts)
            text = TOO_LONG_REPLY.format(length=msg.cut_from, limit=MAX_CHAT_CHARS)
            return Routed(Reply(text), "too long: cut at 64 KiB when stored", changes)
        if msg.kind == "media" and msg.attachment is None:  # a contact, a location, …
            return Routed(Reply(MEDIA_REPLY), "media: told text only", changes)
        if msg.kind == "undecryptable":
            return Routed(Reply(UNREADABLE_REPLY), "unreadable: asked again", changes)
        if (parsed := commands.parse_command(msg.text)) is not None:
            text = "/help" if parsed[0] == "start" else msg.text
            reply = await commands.dispatch(ctx, text)
            return Routed(_reply_of(reply), f"command /{parsed[0]}", changes)
        turn = await media.prepare(self._app, self._channels.get(msg.channel), msg)
        if turn is not None and turn.prompt is None:
            # a voice note, picture or file answered without a chat turn (declined, saved)
            return Routed(Reply(turn.reply()), turn.outcome, changes)
        idle = gw.session_idle_minutes * 60
        session = admitted.session
        if session is None or self._turns_of(canonical) != admitted.turns_seen:
            # a linked identity's turn ran since: read the session again

            async def reopen(tx: Tx) -> Session:
                return await open_session(tx.conn, canonical, tx.now, idle)

            session = await self._batcher.run(reopen)
        if session.pending and turn is None:  # typed words only answer a question
            await changes.set_pending(None)
            answer = await commands.answer_pending(ctx, session.pending, msg.text)
            if answer is not None:
                return Routed(_reply_of(answer), "answer to a question", changes, session)
        said, outcome = await self._chat(msg, canonical, session, changes, turn)
        return Routed(said, outcome, changes, session)

    async def _chat(
        self,
        msg: InboundMessage,
        canonical: str,
        session: Session,
        changes: SessionChanges,
        turn: media.MediaTurn | None = None,
    ) -> tuple[Reply, str]:
        text = turn.prompt or "" if turn is not None else msg.text
        if len(text) > MAX_CHAT_CHARS:
            text = TOO_LONG_REPLY.format(length=len(text), limit=MAX_CHAT_CHARS)
            return Reply(text), "chat: too long"
        channel = self._channels.get(msg.channel)
        await show_typing(channel, msg.chat_id, True)
        try:
            if turn is not None and turn.pictures:
                answer = await self._responder().respond(
                    peer_id=canonical, text=text, history=session.history, pictures=turn.pictures
                )
            else:
                answer = await self._responder().respond(
                    peer_id=canonical, text=text, history=session.history
                )
        finally:
            await show_typing(channel, msg.chat_id, False)
        changes.history = answer.history
        outcome = "chat" if turn is None else turn.outcome
        if answer.error is not None:
            outcome = f"{outcome} error: {answer.error}"[:500]
        said = answer.text if turn is None else turn.reply(answer.text)
        return Reply(said), outcome

    async def _reaction_command(self, msg: InboundMessage) -> str | None:
        vote = approval_vote(msg.reaction)  # 👍🏽, 👎️, ✅, ❌ … (core/reactions.py)
        if vote is None or not msg.target_id:
            return None
        async with self._batcher.store.read() as conn:
            ref = await outbox.ref_of_sent(conn, msg.channel, msg.target_id)
        if not ref or not str(ref).startswith("approval:"):
            return None
        approval = str(ref).split(":", 1)[1]
        return f"/approve {approval}" if vote == "approve" else f"/reject {approval}"


def _reply_of(reply: commands.CommandReply | None) -> Reply | None:
    if reply is None:
        return None
    buttons = [{"label": b.label, "command": b.command} for b in reply.buttons] or None
    return Reply(reply.text, buttons)
