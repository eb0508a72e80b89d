"""The gateway pipeline: one inbound message from "stored" to "reply in the outbox".

::

    on_message → inbox (durable, dedupe) ─► lane of the sender (one at a time, in order)
        → identity → policy (pairing) → rate limit → command | pending answer | chat
        → one transaction: session changes + reply in the outbox + inbox row done

``on_message`` only stores the message and returns, so a channel can
acknowledge it to its network right away; the work happens in per-peer
lanes. Lanes of different peers run concurrently (bounded); one person's
linked identities also take turns. Writes go through a
:class:`~polpo.gateway.writes.WriteBatcher`, so under load many lanes share
one transaction. The outbox dispatcher (:mod:`polpo.gateway.dispatcher`)
sends what this enqueues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from polpo.channels.base import Channel, ChannelStatus, InboundMessage, sanitize_attachment
from polpo.config import GatewayConfig, TelegramChannelConfig, WhatsAppChannelConfig
from polpo.config import _ChannelBase as ChannelBase
from polpo.core.reactions import approval_vote
from polpo.gateway import commands, media
from polpo.gateway.echoes import is_own_message
from polpo.gateway.identity import Identity, merge_lid, peer_id_of, resolve, touch_peer
from polpo.gateway.pairing import request_pairing
from polpo.gateway.policy import Access, check_access
from polpo.gateway.ratelimit import RateLimiter
from polpo.gateway.sessions import Session, SessionChanges, open_session
from polpo.gateway.writes import SyncTx, WriteBatcher, execute
from polpo.peerid import PeerIdError
from polpo.store.tables import allowlist, inbox, outbox

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.llm.base import Responder

log = logging.getLogger(__name__)

MEDIA_REPLY = "I can only read text for now. Please type your message."
#: a message the channel received but could not decrypt (WhatsApp, often right after relinking)
UNREADABLE_REPLY = "I couldn't read your last message — please send it again."
SLOW_DOWN_REPLY = (
    "You're sending messages faster than I can take them. "
    "Please slow down; I'll answer again in a minute."
)
TOO_LONG_REPLY = (
    "That message is too long for me ({length:,} characters). "
    "Please send at most {limit:,} characters at a time."
)
FAILED_REPLY = "Sorry, something went wrong with that message. Please try again."
#: Longest free text handed to the chat agent.
MAX_CHAT_CHARS = 16_000
#: Turns that may run at once, all peers together.
MAX_CONCURRENT_TURNS = 256
#: Channel message ids of our own recent sends remembered (a self-chat echoes them back).
_REMEMBER_SENT = 2_000


#: ``hand_over(row_id, chat_id, text, buttons, reply_to)``: a committed reply, for its
#: dispatcher; ``reply_to`` is the message it answers (the reply quotes it).
HandOver = Callable[[int, str, str, "list[dict[str, str]] | None", "str | None"], None]


class InlineChannelConfig(ChannelBase):
    """A channel's settings given in code rather than polpo.json (``polpo chat``, tests)."""

    type: str = "memory"


ChannelSettings = ChannelBase


@dataclass(frozen=True)
class _Admitted:
    identity: Identity
    access: Access
    #: the session, read in the same transaction for free text (saves a round trip)
    session: Session | None = None
    #: turns finished for this person when it was read; changed → read again
    turns_seen: int = 0


@dataclass
class _Work:
    inbox_id: int
    message: InboundMessage
    #: perf_counter() when it was accepted (latency figures)
    accepted: float
    #: passed identity and policy (only then may a failure be apologised for)
    admitted: bool = False
    #: identity and access, when decided in the transaction that stored it
    admission: _Admitted | None = None


@dataclass(frozen=True)
class _Reply:
    text: str
    buttons: list[dict[str, str]] | None = None


class Gateway:
    """Implements :class:`~polpo.channels.base.ChannelListener` for any number of channels."""

    name = "gateway"

    def __init__(
        self,
        app: Polpo,
        channels: Iterable[Channel] = (),
        *,
        responder: Responder | None = None,
        owner: str | None = None,
        configs: Mapping[str, ChannelSettings] | None = None,
        batcher: WriteBatcher | None = None,
        max_concurrent_turns: int = MAX_CONCURRENT_TURNS,
        status_source: Callable[[], Sequence[ChannelStatus]] | None = None,
    ) -> None:
        self.app = app
        self.owner = owner
        self._owns_batcher = batcher is None
        self.batcher = batcher or WriteBatcher(app.ctx)
        self.ratelimiter = RateLimiter(app.clock)
        self.channels: dict[str, Channel] = {}
        self._configs: dict[str, ChannelSettings] = dict(configs or {})
        self._responder = responder
        self._status_source = status_source
        self._turns = asyncio.Semaphore(max_concurrent_turns)
        self._lanes: dict[str, deque[_Work]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._persons: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._person_turns: dict[str, int] = {}
        # config is fixed while running: normalise allowFrom and admins once
        self._admin_cache: frozenset[str] | None = None
        self._allowed_cache: dict[str, tuple[bool, frozenset[str]]] = {}
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._wakers: dict[str, list[Callable[[], None]]] = {}
        self._handovers: dict[str, HandOver] = {}
        self._connected: dict[str, list[Callable[[], None]]] = {}
        self._sent_ids: deque[str] = deque(maxlen=_REMEMBER_SENT)
        self._sent_set: set[str] = set()
        #: what happened to inbound messages: "replied", "ignored:<why>", "duplicate", …
        self.stats: Counter[str] = Counter()
        for ch in channels:
            self.add_channel(ch)

    # -- wiring ----------------------------------------------------------------

    def add_channel(self, channel: Channel, config: ChannelSettings | None = None) -> None:
        self.channels[channel.name] = channel
        self._admin_cache = None
        self._allowed_cache.pop(channel.name, None)
        if config is not None:
            self._configs[channel.name] = config
        elif channel.name not in self._configs:
            found = self.app.config.channel_of_type(channel.name)
            if found is not None:
                self._configs[channel.name] = found[1]

    def config_for(self, channel: str) -> ChannelSettings | None:
        return self._configs.get(channel)

    def on_enqueued(self, channel: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever a reply for ``channel`` is committed to the outbox."""
        self._wakers.setdefault(channel, []).append(wake)

    def on_reply(self, channel: str, hand_over: HandOver) -> None:
        """Give each reply for ``channel``, once committed, to ``hand_over`` (instead of a
        wake-up that reads it back): ``hand_over(row_id, chat_id, text, buttons, reply_to)``."""
        self._handovers[channel] = hand_over

    def on_connected(self, channel: str, flush: Callable[[], None]) -> None:
        """Call ``flush`` when ``channel`` reports it is connected (again)."""
        self._connected.setdefault(channel, []).append(flush)

    def remember_sent(self, message_id: str) -> None:
        """A message id we sent: when a self-chat echoes it back, it is not input."""
        if len(self._sent_ids) == self._sent_ids.maxlen:
            self._sent_set.discard(self._sent_ids[0])
        self._sent_ids.append(message_id)
        self._sent_set.add(message_id)

    @property
    def responder(self) -> Responder:
        if self._responder is None:
            from polpo.llm.chat import ChatAgent

            self._responder = ChatAgent(self.app)
        return self._responder

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Resume messages stored but not finished (a crash, a stop mid-turn)."""
        owner_match = inbox.c.owner.is_(None) if self.owner is None else inbox.c.owner == self.owner
        rows = await self.batcher.read(
            lambda conn: conn.execute(
                sa.select(inbox.c.id, inbox.c.payload)
                .where(inbox.c.status == "received", owner_match)
                .order_by(inbox.c.id)
            ).all()
        )
        for row in rows:
            try:
                message = InboundMessage.from_dict(row.payload)
            except Exception:  # a row we cannot read back: record it, go on
                log.exception("inbox row %s cannot be resumed", row.id)
                await self.batcher.run(partial(_mark, row.id, "failed", "unreadable payload"))
                continue
            self._enqueue(_Work(row.id, message, time.perf_counter()))
        if rows:
            log.info("resuming %d unfinished inbound message(s)", len(rows))

    async def stop(self, grace: float = 10.0) -> None:
        """Let running turns finish (up to ``grace`` seconds), then cancel what is left.

        Cancelled messages stay ``received`` and are resumed on the next start.
        """
        with contextlib.suppress(TimeoutError):
            await self.wait_idle(grace)
        tasks = list(self._lane_tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.batcher.wait_idle()
        if self._owns_batcher:
            await self.batcher.close()

    async def wait_idle(self, within: float | None = None) -> None:
        """Wait until every accepted message has been processed."""
        await asyncio.wait_for(self._idle.wait(), within)
        await self.batcher.wait_idle()

    # -- ChannelListener -------------------------------------------------------

    async def on_message(self, message: InboundMessage) -> None:
        message = sanitize(message)
        accepted = time.perf_counter()
        settings = self._configs.get(message.channel)
        # Nothing of this sender waiting: admit it in the transaction that stores it
        # (one round trip less). Otherwise its lane admits it in turn.
        early = f"{message.channel}:{message.peer}" not in self._lanes
        inbox_id, status, admission = await self.batcher.run(
            partial(self._store, message, settings, early)
        )
        if inbox_id is None:
            self.stats["duplicate"] += 1
            log.debug("duplicate %s message %s dropped", message.channel, message.message_id)
            return
        if status != "received":
            self.stats["ignored:offline"] += 1
            return
        if isinstance(admission, str):
            self._finished_early(message, admission)
            return
        self._enqueue(_Work(inbox_id, message, accepted, admission=admission))

    async def on_status(self, status: ChannelStatus) -> None:
        if self.owner is None:
            from polpo.services.status import write_channel_state

            try:
                await write_channel_state(
                    self.app.ctx, status.channel, status.state, status.detail, status.account
                )
                if status.state in ("disconnected", "logged_out", "replaced"):
                    async with self.app.ctx.tx() as tx:
                        await tx.emit(
                            "channel:disconnected",
                            {
                                "channel": status.channel,
                                "state": status.state,
                                "detail": status.detail,
                            },
                        )
            except Exception:
                log.exception("recording %s state %s failed", status.channel, status.state)
        if status.connected:
            for flush in self._connected.get(status.channel, ()):
                flush()

    # -- storing ---------------------------------------------------------------

    def _store(
        self, message: InboundMessage, settings: ChannelSettings | None, early: bool, tx: SyncTx
    ) -> tuple[int | None, str, _Admitted | str | None]:
        status, outcome = "received", None
        if message.offline and settings is not None:
            max_age = settings.gateway.offline_max_age_minutes * 60
            if tx.now - message.timestamp > max_age:
                status, outcome = "ignored", "offline: older than offlineMaxAgeMinutes"
        res = execute(
            tx.conn,
            _inbox_insert(tx.conn),
            {
                "channel": message.channel,
                "message_id": message.message_id,
                "peer_id": f"{message.channel}:{message.peer}",
                "chat_id": message.chat_id,
                "text": message.text,
                "payload": message.to_payload(),
                "sent_at": message.timestamp,
                "received_at": tx.now,
                "status": status,
                "outcome": outcome,
                "processed_at": tx.now if status != "received" else None,
                "owner": self.owner,
            },
        )
        found = res.fetchall()
        inbox_id = found[0][0] if found else None
        if inbox_id is None or status != "received" or not early:
            return (int(inbox_id) if inbox_id is not None else None), status, None
        work = _Work(int(inbox_id), message, 0.0)
        try:
            with tx.conn.begin_nested():
                return work.inbox_id, status, self._precheck_and_admit(work, settings, tx)
        except Exception:
            # stored all the same; its lane will try again (and record a failure there)
            log.exception("admitting inbound message %s failed", work.inbox_id)
            return work.inbox_id, status, None

    def _precheck_and_admit(
        self, work: _Work, settings: ChannelSettings | None, tx: SyncTx
    ) -> _Admitted | str:
        msg = work.message
        reason = precheck(msg, settings.gateway if settings is not None else None)
        peer_id = ""
        if reason is None:
            try:
                peer_id = peer_id_of(msg)
            except PeerIdError:
                reason = "invalid sender id"
        if reason is not None or settings is None:
            reason = reason or "no gateway for this channel"
            _mark(work.inbox_id, "ignored", reason, tx)
            return f"ignored:{reason}"
        return self._admit(work, peer_id, settings, tx)

    def _finished_early(self, msg: InboundMessage, outcome: str) -> None:
        """Book-keeping for a message answered or ignored by its admission."""
        self.stats[outcome] += 1
        if outcome.startswith("ignored:"):
            log.info("ignored %s message %s: %s", msg.channel, msg.message_id, outcome[8:])
        else:
            self._wake(msg.channel)

    # -- lanes -----------------------------------------------------------------

    def _enqueue(self, work: _Work) -> None:
        key = f"{work.message.channel}:{work.message.peer}"
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
        lane.append(work)
        self._outstanding += 1
        self._idle.clear()
        if key not in self._lane_tasks:
            self._lane_tasks[key] = asyncio.create_task(self._run_lane(key), name=f"lane {key}")

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            async with self._turns:
                while lane:
                    work = lane[0]
                    try:
                        await self._process(work)
                    finally:
                        lane.popleft()
                        self._outstanding -= 1
        finally:
            del self._lane_tasks[key]
            if lane:  # cancelled with work left: it stays in the inbox for the next start
                self._outstanding -= len(lane)
            del self._lanes[key]
            if self._outstanding <= 0:
                self._outstanding = 0
                self._idle.set()

    @contextlib.asynccontextmanager
    async def _person(self, canonical: str) -> AsyncIterator[None]:
        """One turn at a time per person (linked identities on different channels included)."""
        entry = self._persons.get(canonical)
        if entry is None:
            entry = self._persons[canonical] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                del self._persons[canonical]

    # -- one message -----------------------------------------------------------

    async def _process(self, work: _Work) -> None:
        try:
            await self._turn(work)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("processing inbound message %s failed", work.inbox_id)
            self.stats["failed"] += 1
            with contextlib.suppress(Exception):
                await self.batcher.run(
                    partial(
                        self._finish,
                        work,
                        None,
                        None,
                        None,
                        _Reply(FAILED_REPLY) if work.admitted else None,
                        "failed",
                        f"{type(e).__name__}: {e}"[:500],
                    )
                )
                self._wake(work.message.channel)

    async def _turn(self, work: _Work) -> None:
        msg = work.message
        settings = self._configs.get(msg.channel)
        admitted = work.admission
        if admitted is None or settings is None:
            decided = await self.batcher.run(partial(self._precheck_and_admit, work, settings))
            if isinstance(decided, str) or settings is None:  # no settings: always ignored
                self._finished_early(msg, decided if isinstance(decided, str) else "ignored")
                return
            admitted = decided
        peer_id = admitted.identity.peer_id
        work.admitted = True
        gw = settings.gateway
        canonical = admitted.identity.canonical
        verdict = self.ratelimiter.check(canonical, gw.rate_limit_per_minute)
        if verdict == "drop":
            await self._ignore(work, "rate limited")
        elif verdict == "warn":
            await self._complete(
                work,
                peer_id,
                canonical,
                None,
                _Reply(SLOW_DOWN_REPLY),
                "rate limited: told to slow down",
            )
        else:
            async with self._person(canonical):
                try:
                    await self._respond(work, peer_id, admitted, gw)
                finally:
                    self._person_turns[canonical] = self._person_turns.get(canonical, 0) + 1
        if gw.send_read_receipts:
            channel = self.channels.get(msg.channel)
            if channel is not None:
                try:
                    await channel.mark_read(msg)
                except Exception as e:
                    log.debug("mark_read on %s failed: %s", msg.channel, e)

    async def _respond(
        self, work: _Work, peer_id: str, admitted: _Admitted, gw: GatewayConfig
    ) -> None:
        msg = work.message
        canonical = admitted.identity.canonical
        changes = SessionChanges()
        ctx = commands.CommandContext(
            app=self.app,
            peer_id=canonical,
            channel=msg.channel,
            chat_id=msg.chat_id,
            display_name=msg.display_name,
            is_admin=admitted.access.is_admin,
            now=self.app.clock.now(),
            session=changes,
            channel_statuses=self._statuses(),
            reader=self.batcher,
        )
        session: Session | None = None
        reply: commands.CommandReply | None = None
        outcome = "command"
        if msg.kind == "reaction":
            command = await self._reaction_command(msg)
            if command is None:
                await self._ignore(work, "reaction not on an approval request")
                return
            reply = await commands.dispatch(ctx, command)
            outcome = f"reaction: {command}"
        elif msg.kind == "media" and msg.attachment is None:  # a contact, a location, …
            reply, outcome = commands.CommandReply(MEDIA_REPLY), "media: told text only"
        elif msg.kind == "undecryptable":
            reply, outcome = commands.CommandReply(UNREADABLE_REPLY), "unreadable: asked again"
        elif (parsed := commands.parse_command(msg.text)) is not None:
            text = "/help" if parsed[0] == "start" else msg.text
            reply = await commands.dispatch(ctx, text)
            outcome = f"command /{parsed[0]}"
        elif (turn := await media.prepare(self.app, self.channels.get(msg.channel), msg)) and (
            turn.prompt is None
        ):  # a voice note, picture or file answered without a chat turn (declined, saved)
            reply, outcome = commands.CommandReply(turn.reply()), turn.outcome
        else:
            idle = gw.session_idle_minutes * 60
            session = admitted.session
            if session is None or self._person_turns.get(canonical, 0) != admitted.turns_seen:
                # a linked identity's turn ran since: read the session again
                session = await self.batcher.run(
                    lambda tx: open_session(tx.conn, canonical, tx.now, idle)
                )
            if session.pending and turn is None:  # typed words only answer a question
                await changes.set_pending(None)
                reply = await commands.answer_pending(ctx, session.pending, msg.text)
                outcome = "answer to a question"
            if reply is None:
                reply, outcome = await self._chat(msg, canonical, session, changes, turn)
        await self._complete(
            work, peer_id, canonical, changes, _reply_of(reply), outcome, session=session
        )

    async def _chat(
        self,
        msg: InboundMessage,
        canonical: str,
        session: Session,
        changes: SessionChanges,
        turn: media.MediaTurn | None = None,
    ) -> tuple[commands.CommandReply, str]:
        text = turn.prompt or "" if turn is not None else msg.text
        if len(text) > MAX_CHAT_CHARS:
            text = TOO_LONG_REPLY.format(length=len(text), limit=MAX_CHAT_CHARS)
            return commands.CommandReply(text), "chat: too long"
        channel = self.channels.get(msg.channel)
        await _typing(channel, msg.chat_id, True)
        try:
            if turn is not None and turn.pictures:
                answer = await self.responder.respond(
                    peer_id=canonical, text=text, history=session.history, pictures=turn.pictures
                )
            else:
                answer = await self.responder.respond(
                    peer_id=canonical, text=text, history=session.history
                )
        finally:
            await _typing(channel, msg.chat_id, False)
        changes.history = answer.history
        outcome = "chat" if turn is None else turn.outcome
        if answer.error is not None:
            outcome = f"{outcome} error: {answer.error}"[:500]
        said = answer.text if turn is None else turn.reply(answer.text)
        return commands.CommandReply(said), outcome

    async def _reaction_command(self, msg: InboundMessage) -> str | None:
        vote = approval_vote(msg.reaction)  # 👍🏽, 👎️, ✅, ❌ … (core/reactions.py)
        if vote is None or not msg.target_id:
            return None
        target = msg.target_id
        ref = await self.batcher.read(
            lambda conn: conn.execute(
                sa.select(outbox.c.ref).where(
                    outbox.c.channel == msg.channel, outbox.c.channel_message_id == target
                )
            ).scalar()
        )
        if not ref or not str(ref).startswith("approval:"):
            return None
        approval = str(ref).split(":", 1)[1]
        return f"/approve {approval}" if vote == "approve" else f"/reject {approval}"

    def _statuses(self) -> Sequence[ChannelStatus]:
        if self._status_source is not None:
            return self._status_source()
        out = []
        for ch in self.channels.values():
            try:
                out.append(ch.status())
            except Exception:
                out.append(ChannelStatus(ch.name, "error"))
        return out

    # -- transactions ------------------------------------------------------------

    def _admit(
        self, work: _Work, peer_id: str, settings: ChannelSettings, tx: SyncTx
    ) -> _Admitted | str:
        """Identity and access, in one transaction. Returns a string when the
        message is finished here (ignored, or answered with a pairing code)."""
        msg, conn, now = work.message, tx.conn, tx.now
        touch_peer(conn, peer_id, msg.channel, msg.display_name, now)
        if msg.lid and msg.channel == "whatsapp" and ":lid:" not in peer_id:
            merge_lid(conn, peer_id, msg.lid, now)
        if msg.is_self_chat and self._is_own_echo(conn, msg):
            _mark(work.inbox_id, "ignored", "our own message", tx)
            return "ignored:own message"
        identity = resolve(conn, peer_id)
        gw = settings.gateway
        if msg.is_self_chat:
            access = Access(True, True, "self-chat")
        else:
            allow_all, allow_from = self._allowed(msg.channel, settings)
            check = partial(
                check_access,
                policy=gw.dm_policy,
                group=identity.group,
                allow_all=allow_all,
                allow_from=allow_from,
                admins=self._admins(),
            )
            access = check(allowlisted=False)
            if not access.allowed and access.why in ("pairing", "not allowed"):
                # only then is the dynamic allowlist worth a query
                listed = conn.execute(_LISTED, {"ids": list(identity.group)}).first()
                access = check(allowlisted=listed is not None)
        if access.allowed:
            if msg.kind in ("text", "edit") and commands.parse_command(msg.text) is None:
                canonical = identity.canonical
                idle = gw.session_idle_minutes * 60
                session = open_session(conn, canonical, now, idle)
                return _Admitted(identity, access, session, self._person_turns.get(canonical, 0))
            return _Admitted(identity, access)
        if access.why == "pairing" and not msg.is_group and msg.kind != "reaction":
            outcome = request_pairing(
                tx,
                channel=msg.channel,
                peer_id=peer_id,
                chat_id=msg.chat_id,
                display_name=msg.display_name,
                owner=self.owner,
            )
            if outcome.reply is not None:
                self._finish(
                    work,
                    peer_id,
                    None,
                    None,
                    _Reply(outcome.reply),
                    "done",
                    f"pairing: {outcome.what}",
                    tx,
                )
                return f"pairing:{outcome.what}"
            _mark(work.inbox_id, "ignored", _PAIRING_SILENCE[outcome.what], tx)
            return f"ignored:pairing {outcome.what}"
        _mark(work.inbox_id, "ignored", access.why, tx)
        return f"ignored:{access.why}"

    def _is_own_echo(self, conn: sa.Connection, msg: InboundMessage) -> bool:
        if msg.message_id in self._sent_set:
            return True
        return is_own_message(conn, msg.channel, msg.message_id)

    def _admins(self) -> frozenset[str]:
        if self._admin_cache is None:
            self._admin_cache = self._collect_admins()
        return self._admin_cache

    def _allowed(self, channel: str, settings: ChannelSettings) -> tuple[bool, frozenset[str]]:
        found = self._allowed_cache.get(channel)
        if found is None:
            found = self._allowed_cache[channel] = settings.allowed_peers()
        return found

    def _collect_admins(self) -> frozenset[str]:
        admins: set[str] = set()
        for settings in self._configs.values():
            admins.update(settings.admin_peers())
        for _, ch in self.app.config.settings.notifications.channels.items():
            if isinstance(ch, WhatsAppChannelConfig | TelegramChannelConfig):
                admins.update(ch.admin_peers())
        return frozenset(admins)

    async def _ignore(self, work: _Work, why: str) -> None:
        self.stats[f"ignored:{why}"] += 1
        log.info("ignored %s message %s: %s", work.message.channel, work.message.message_id, why)
        await self.batcher.run(partial(_mark, work.inbox_id, "ignored", why))

    async def _complete(
        self,
        work: _Work,
        peer_id: str,
        canonical: str,
        changes: SessionChanges | None,
        reply: _Reply | None,
        outcome: str,
        *,
        session: Session | None = None,
    ) -> None:
        idle = 60.0
        settings = self._configs.get(work.message.channel)
        if settings is not None:
            idle = settings.gateway.session_idle_minutes * 60
        row_id = await self.batcher.run(
            partial(
                self._finish,
                work,
                peer_id,
                canonical,
                changes,
                reply,
                "done",
                outcome,
                session=session,
                idle_seconds=idle,
            )
        )
        self.stats["replied" if reply is not None and reply.text.strip() else "done"] += 1
        msg = work.message
        hand_over = self._handovers.get(msg.channel)
        if row_id is not None and reply is not None and hand_over is not None:
            # committed: the dispatcher sends it without reading it back
            hand_over(row_id, msg.chat_id, reply.text, reply.buttons, msg.message_id)
        else:
            self._wake(msg.channel)

    def _finish(
        self,
        work: _Work,
        peer_id: str | None,
        canonical: str | None,
        changes: SessionChanges | None,
        reply: _Reply | None,
        status: str,
        outcome: str,
        tx: SyncTx,
        *,
        session: Session | None = None,
        idle_seconds: float = 3600.0,
    ) -> int | None:
        """Session changes, the reply in the outbox and the inbox row done: all or nothing.

        Returns the reply's outbox row id (None: no reply, or one was already there)."""
        msg = work.message
        row_id = None
        if changes is not None and canonical is not None:
            changes.apply(tx.conn, canonical, tx.now, idle_seconds, session)
        if reply is not None and reply.text.strip():
            row_id = enqueue_sync(
                tx.conn,
                channel=msg.channel,
                chat_id=msg.chat_id,
                text=reply.text,
                now=tx.now,
                peer_id=peer_id,
                inbox_id=work.inbox_id,
                dedupe_key=f"inbox:{work.inbox_id}",
                buttons=reply.buttons,
                owner=self.owner,
            )
        _mark(work.inbox_id, status, outcome, tx)
        return row_id

    def _wake(self, channel: str) -> None:
        for wake in self._wakers.get(channel, ()):
            wake()


# -- helpers -------------------------------------------------------------------


def enqueue_sync(
    conn: sa.Connection,
    *,
    channel: str,
    chat_id: str,
    text: str,
    now: float,
    peer_id: str | None,
    inbox_id: int | None,
    dedupe_key: str,
    buttons: list[dict[str, str]] | None,
    owner: str | None,
) -> int | None:
    """:func:`polpo.store.outbox.enqueue` on a synchronous connection: the new row's id,
    None if already there."""
    res = execute(
        conn,
        _outbox_insert(conn),
        {
            "channel": channel,
            "chat_id": chat_id,
            "peer_id": peer_id,
            "text": text,
            "inbox_id": inbox_id,
            "dedupe_key": dedupe_key,
            "buttons": buttons,
            "owner": owner,
            "parts_sent": 0,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        },
    )
    found = res.fetchall()
    row_id = found[0][0] if found else None
    return None if row_id is None else int(row_id)


def _insert_ignore(dialect: str, table: sa.Table) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table).on_conflict_do_nothing()


# Built once per dialect: constructing SQLAlchemy statements costs more than running them.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _inbox_insert(conn: sa.Connection) -> Any:
    key = ("inbox", conn.dialect.name)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = _insert_ignore(conn.dialect.name, inbox).returning(inbox.c.id)
    return _STATEMENTS[key]


def _outbox_insert(conn: sa.Connection) -> Any:
    key = ("outbox", conn.dialect.name)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = _insert_ignore(conn.dialect.name, outbox).returning(outbox.c.id)
    return _STATEMENTS[key]


_LISTED = sa.select(allowlist.c.peer_id).where(
    allowlist.c.peer_id.in_(sa.bindparam("ids", expanding=True))
)
_MARK = inbox.update().where(inbox.c.id == sa.bindparam("iid"))


_PAIRING_SILENCE = {
    "throttled": "pairing: code already sent less than 10 minutes ago",
    "full": "pairing: 3 requests already pending on this channel (told once)",
    "cooldown": "pairing: its last code expired less than 24 hours ago",
}


def precheck(msg: InboundMessage, gw: GatewayConfig | None) -> str | None:
    """Why a message is ignored before anyone is looked up, or None to go on."""
    if gw is None:
        return "no gateway for this channel"
    if not gw.enable_inbound:
        return "inbound disabled"
    if gw.dm_policy == "disabled":
        return "disabled"
    if msg.is_group and gw.group_policy != "open":
        return "group"
    if msg.is_self_chat:
        if not gw.self_chat:
            return "self-chat off"
    elif msg.is_from_me:
        return "from me"
    if msg.kind not in ("text", "edit", "reaction", "media", "undecryptable"):
        return "unsupported message type"
    if msg.kind == "reaction" and not msg.reaction:
        return "reaction removed"
    return None


def _mark(inbox_id: int, status: str, outcome: str | None, tx: SyncTx) -> None:
    execute(
        tx.conn,
        _MARK,
        {"iid": inbox_id, "status": status, "outcome": outcome, "processed_at": tx.now},
    )


def _reply_of(reply: commands.CommandReply | None) -> _Reply | None:
    if reply is None:
        return None
    buttons = [{"label": b.label, "command": b.command} for b in reply.buttons] or None
    return _Reply(reply.text, buttons)


async def _typing(channel: Channel | None, chat_id: str, on: bool) -> None:
    if channel is None:
        return
    try:
        await channel.typing(chat_id, on)
    except Exception as e:  # typing is a nicety; never fail a turn for it
        log.debug("typing on %s failed: %s", channel.name, e)


_STR_FIELDS = (
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
