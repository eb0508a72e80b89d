"""The gateway: one inbound message from "stored" to "reply in the outbox".

::

    on_message → inbox (durable, dedupe) ─► lane of the sender (one at a time, in order)
        → admission (identity, policy, pairing) → rate limit → routing
        → one transaction: session changes + reply in the outbox + inbox row done

``on_message`` only stores the message and returns, so a channel can
acknowledge it to its network right away; the work happens in per-sender
lanes (:mod:`polpo.gateway.lanes`). The parts, each in its own module:
:mod:`~polpo.gateway.inbox` (the durable rows), :mod:`~polpo.gateway.admission`
(``Admitted | Finished``), :mod:`~polpo.gateway.routing` (command, pending
answer or chat). Writes go through a :class:`~polpo.store.batch.WriteBatcher`,
so under load many lanes share one transaction. The outbox dispatcher
(:mod:`polpo.gateway.dispatcher`) sends what this enqueues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from polpo.channels.base import Channel, ChannelStatus, InboundMessage
from polpo.config import _ChannelBase as ChannelBase
from polpo.gateway import commands, inbox
from polpo.gateway.admission import Admission, Admitted, Finished, Judged
from polpo.gateway.flood import StrangerBudget
from polpo.gateway.inbox import Finish, Reply, sanitize
from polpo.gateway.lanes import KeyedLock, Lanes
from polpo.gateway.ratelimit import RateLimiter, Verdict
from polpo.gateway.routing import Dropped, Routed, Router
from polpo.services.access import AccessRules
from polpo.services.status import status_view
from polpo.store.batch import WriteBatcher
from polpo.store.tx import Tx

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.llm.base import Responder

log = logging.getLogger(__name__)

SLOW_DOWN_REPLY = (
    "You're sending messages faster than I can take them. "
    "Please slow down; I'll answer again in a minute."
)
FAILED_REPLY = "Sorry, something went wrong with that message. Please try again."
#: Turns that may run at once, all peers together.
MAX_CONCURRENT_TURNS = 256


#: ``hand_over(row_id, chat_id, text, buttons, reply_to)``: a committed reply, for its
#: dispatcher; ``reply_to`` is the message it answers (the reply quotes it).
HandOver = Callable[[int, str, str, "list[dict[str, str]] | None", "str | None"], None]


class InlineChannelConfig(ChannelBase):
    """A channel's settings given in code rather than polpo.json (``polpo chat``, tests)."""

    type: str = "memory"


ChannelSettings = ChannelBase


@dataclass
class _Work:
    inbox_id: int
    message: InboundMessage
    #: perf_counter() when it was accepted (latency figures)
    accepted: float
    #: passed identity and policy (only then may a failure be apologised for)
    admitted: bool = False
    #: identity and access, when decided in the transaction that stored it
    admission: Admitted | None = None
    #: the rate limiter's verdict, when taken then
    verdict: Verdict | None = None


@dataclass(frozen=True)
class _Early:
    """What the transaction that stored a message did with it."""

    stored: inbox.Stored | None
    decided: Admitted | Finished | None = None
    verdict: Verdict | None = None
    #: answered right there (a command that only reads, on an idle lane)
    answered: _Answered | None = None
    #: dropped unstored by the flood guard (a sender who is not admitted, past the
    #: minute's budget)
    flooded: bool = False


@dataclass(frozen=True)
class _Answered:
    reply: Reply | None
    outcome: str
    #: the reply's outbox row (None: no reply)
    row_id: int | None


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
        self.batcher = batcher or app.ctx.write_batcher()
        self.ratelimiter = RateLimiter(app.clock)
        #: rows a minute senders who are not admitted may add, all together (flood guard)
        self.strangers = StrangerBudget(
            app.clock, app.config.settings.storage.stranger_rows_per_minute
        )
        self.channels: dict[str, Channel] = {}
        self._configs: dict[str, ChannelSettings] = dict(configs or {})
        self._responder = responder
        self._status_source = status_source
        self._lanes: Lanes[_Work] = Lanes(self._process, limit=max_concurrent_turns)
        self._persons = KeyedLock()
        self._person_turns: dict[str, int] = {}
        self._rules = AccessRules(app.config, self._configs)
        self._admission = Admission(
            self._rules,
            owner=owner,
            turns_of=self._turns_of,
            on_seen=status_view(app.ctx).seen,
        )
        self._router = Router(
            app,
            self.batcher,
            self.channels,
            responder=lambda: self.responder,
            statuses=self._statuses,
            turns_of=self._turns_of,
        )
        self._wakers: dict[str, list[Callable[[], None]]] = {}
        self._handovers: dict[str, HandOver] = {}
        self._connected: dict[str, list[Callable[[], None]]] = {}
        #: what happened to inbound messages: "replied", "ignored:<why>", "duplicate", …
        self.stats: Counter[str] = Counter()
        for ch in channels:
            self.add_channel(ch)

    # -- wiring ----------------------------------------------------------------

    def add_channel(self, channel: Channel, config: ChannelSettings | None = None) -> None:
        self.channels[channel.name] = channel
        if config is not None:
            self._configs[channel.name] = config
        elif channel.name not in self._configs:
            found = self.app.config.channel_of_type(channel.name)
            if found is not None:
                self._configs[channel.name] = found[1]
        settings = self._configs.get(channel.name)
        if settings is not None:
            self._rules.set_channel(channel.name, settings)

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
        self._admission.sent.add(message_id)

    @property
    def responder(self) -> Responder:
        if self._responder is None:
            from polpo.llm.chat import ChatAgent

            self._responder = ChatAgent(self.app)
        return self._responder

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Resume messages stored but not finished (a crash, a stop mid-turn)."""
        async with self.app.store.read() as conn:
            rows = await inbox.unfinished(conn, self.owner)
        for row in rows:
            if row.message is None:  # a row we cannot read back: record it, go on
                log.error("inbox row %s cannot be resumed", row.inbox_id)
                await self.batcher.run(partial(_mark, row.inbox_id, "failed", "unreadable payload"))
                continue
            self._enqueue(_Work(row.inbox_id, row.message, time.perf_counter()))
        if rows:
            log.info("resuming %d unfinished inbound message(s)", len(rows))

    async def stop(self, grace: float = 10.0) -> None:
        """Let running turns finish (up to ``grace`` seconds), then cancel what is left.

        Cancelled messages stay ``received`` and are resumed on the next start.
        """
        with contextlib.suppress(TimeoutError):
            await self.wait_idle(grace)
        await self._lanes.cancel()
        await self.batcher.wait_idle()
        if self._owns_batcher:
            await self.batcher.close()

    async def wait_idle(self, within: float | None = None) -> None:
        """Wait until every accepted message has been processed."""
        await self._lanes.wait_idle(within)
        await self.batcher.wait_idle()

    # -- ChannelListener -------------------------------------------------------

    async def on_message(self, message: InboundMessage) -> None:
        message = sanitize(message)
        accepted = time.perf_counter()
        # Nothing of this sender waiting: admit it in the transaction that stores it
        # (one round trip less), and answer a command that only reads right there
        # (one transaction in all). Otherwise its lane admits it in turn.
        early = not self._lanes.busy(_lane_key(message))
        try:
            done = await self.batcher.run(partial(self._store, message, early))
        except Exception:
            # judging or admitting it failed (and took the stored row with it): store it
            # whole, unjudged, for its lane to judge again (and record a failure there;
            # a sender who is not admitted then has the row emptied)
            log.exception("admitting %s message %s failed", message.channel, message.message_id)
            done = await self.batcher.run(partial(self._store, message, False, judge=False))
        stored, decided = done.stored, done.decided
        if done.flooded:
            self.stats["dropped:flood"] += 1
            return
        if stored is None:
            self.stats["duplicate"] += 1
            log.debug("duplicate %s message %s dropped", message.channel, message.message_id)
            return
        if not stored.received:
            self.stats["ignored:offline"] += 1
            return
        if isinstance(decided, Finished):
            self._finished_early(message, decided)
            return
        if done.answered is not None:
            await self._answered(message, done.answered)
            return
        self._enqueue(
            _Work(stored.inbox_id, message, accepted, admission=decided, verdict=done.verdict)
        )

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

    async def _store(
        self, message: InboundMessage, early: bool, tx: Tx, *, judge: bool = True
    ) -> _Early:
        """Judge ``message``'s sender, then store it: whole if admitted, else only what
        dedupe needs (and finish it here). When ``early``, admit it in the same
        transaction, and answer it too if it is a command that only reads.
        ``judge`` False: store it whole, for its lane to judge."""
        settings = self._configs.get(message.channel)
        max_age = settings.gateway.offline_max_age_minutes * 60 if settings is not None else None
        if inbox.too_old(message, max_age, tx.now):
            return await self._store_trace(tx, message, None)
        judged = await self._admission.judge(tx, message) if judge else None
        if judged is not None and not judged.admitted:
            return await self._store_trace(tx, message, judged)
        stored = await inbox.store_message(tx, message, owner=self.owner)
        if stored is None or not early:
            return _Early(stored)
        decided = await self._admission.decide(tx, stored.inbox_id, message, judged)
        if not isinstance(decided, Admitted) or settings is None:
            return _Early(stored, decided)
        gw = settings.gateway
        canonical = decided.identity.canonical
        verdict = self.ratelimiter.check(canonical, gw.rate_limit_per_minute)
        if verdict != "ok" or not _reads_only(message) or self._persons.held(canonical):
            return _Early(stored, decided, verdict)
        routed = await self._router.route(message, decided, gw)
        self._person_turns[canonical] = self._person_turns.get(canonical, 0) + 1
        if isinstance(routed, Dropped):  # (a command is never dropped)
            return _Early(stored, decided, verdict)
        end = Finish(
            stored.inbox_id,
            message,
            "done",
            routed.outcome,
            routed.reply,
            peer_id=decided.identity.peer_id,
            canonical=canonical,
            changes=routed.changes,
            idle_seconds=gw.session_idle_minutes * 60,
            owner=self.owner,
        )
        row_id = await inbox.finish(tx, end)
        return _Early(stored, decided, verdict, _Answered(routed.reply, routed.outcome, row_id))

    async def _store_trace(self, tx: Tx, message: InboundMessage, judged: Judged | None) -> _Early:
        """A message that will not be processed: its sender is not admitted (``judged``),
        or it is an offline catch-up too old to answer (None). Only what dedupe needs is
        stored, within the flood guard's budget (our own echoes are not counted)."""
        counts = judged is None or not judged.echo
        if counts and not self.strangers.has_room():
            return _Early(None, flooded=True)
        if judged is None:
            stored = await inbox.store_trace(tx, message, owner=self.owner, ignored=_TOO_OLD)
        else:
            stored = await inbox.store_trace(tx, message, owner=self.owner)
        if stored is None:
            return _Early(None)
        if counts:
            self.strangers.spend()
        if judged is None:
            return _Early(stored)
        decided = await self._admission.decide(tx, stored.inbox_id, message, judged)
        return _Early(stored, decided)

    async def _answered(self, msg: InboundMessage, answered: _Answered) -> None:
        """Book-keeping for a message answered in the transaction that stored it."""
        reply = answered.reply
        self.stats["replied" if reply is not None and reply.text.strip() else "done"] += 1
        self._deliver(msg, answered.row_id, reply)
        await self._read_receipt(msg)

    def _finished_early(self, msg: InboundMessage, finished: Finished) -> None:
        """Book-keeping for a message answered or ignored by its admission."""
        self.stats[finished.stat] += 1
        if finished.kind == "ignored":
            log.info("ignored %s message %s: %s", msg.channel, msg.message_id, finished.why)
        else:
            self._wake(msg.channel)

    def _enqueue(self, work: _Work) -> None:
        self._lanes.push(_lane_key(work.message), work)

    # -- one message -----------------------------------------------------------

    async def _process(self, work: _Work) -> None:
        try:
            await self._turn(work)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("processing inbound message %s failed", work.inbox_id)
            self.stats["failed"] += 1
            end = Finish(
                work.inbox_id,
                work.message,
                "failed",
                f"{type(e).__name__}: {e}"[:500],
                Reply(FAILED_REPLY) if work.admitted else None,
                owner=self.owner,
                # not admitted (yet): nothing of what they said is kept
                forget=not work.admitted,
            )
            with contextlib.suppress(Exception):
                await self.batcher.run(partial(inbox.finish, end=end))
                self._wake(work.message.channel)

    async def _turn(self, work: _Work) -> None:
        msg = work.message
        settings = self._configs.get(msg.channel)
        admitted = work.admission
        if admitted is None or settings is None:
            decided = await self.batcher.run(
                partial(self._admission.decide, inbox_id=work.inbox_id, msg=msg)
            )
            if isinstance(decided, Finished):
                self._finished_early(msg, decided)
                return
            admitted = decided
        assert settings is not None  # no settings: admission always finishes the message
        work.admitted = True
        gw = settings.gateway
        canonical = admitted.identity.canonical
        verdict = work.verdict or self.ratelimiter.check(canonical, gw.rate_limit_per_minute)
        if verdict == "drop":
            await self._ignore(work, "rate limited")
        elif verdict == "warn":
            await self._complete(
                work, admitted, Reply(SLOW_DOWN_REPLY), "rate limited: told to slow down"
            )
        else:
            async with self._persons.hold(canonical):
                try:
                    routed = await self._router.route(msg, admitted, gw)
                    if isinstance(routed, Dropped):
                        await self._ignore(work, routed.why)
                    else:
                        await self._complete(
                            work,
                            admitted,
                            routed.reply,
                            routed.outcome,
                            changes=routed,
                        )
                finally:
                    self._person_turns[canonical] = self._person_turns.get(canonical, 0) + 1
        await self._read_receipt(msg)

    async def _read_receipt(self, msg: InboundMessage) -> None:
        settings = self._configs.get(msg.channel)
        if settings is None or not settings.gateway.send_read_receipts:
            return
        channel = self.channels.get(msg.channel)
        if channel is not None:
            try:
                await channel.mark_read(msg)
            except Exception as e:
                log.debug("mark_read on %s failed: %s", msg.channel, e)

    def _turns_of(self, canonical: str) -> int:
        return self._person_turns.get(canonical, 0)

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

    async def _ignore(self, work: _Work, why: str) -> None:
        self.stats[f"ignored:{why}"] += 1
        log.info("ignored %s message %s: %s", work.message.channel, work.message.message_id, why)
        await self.batcher.run(partial(_mark, work.inbox_id, "ignored", why))

    async def _complete(
        self,
        work: _Work,
        admitted: Admitted,
        reply: Reply | None,
        outcome: str,
        *,
        changes: Routed | None = None,
    ) -> None:
        msg = work.message
        settings = self._configs.get(msg.channel)
        idle = settings.gateway.session_idle_minutes * 60 if settings is not None else 60.0
        end = Finish(
            work.inbox_id,
            msg,
            "done",
            outcome,
            reply,
            peer_id=admitted.identity.peer_id,
            canonical=admitted.identity.canonical,
            changes=changes.changes if changes is not None else None,
            session=changes.session if changes is not None else None,
            idle_seconds=idle,
            owner=self.owner,
        )
        row_id = await self.batcher.run(partial(inbox.finish, end=end))
        self.stats["replied" if reply is not None and reply.text.strip() else "done"] += 1
        self._deliver(msg, row_id, reply)

    def _deliver(self, msg: InboundMessage, row_id: int | None, reply: Reply | None) -> None:
        """A turn's reply is committed: hand it to its dispatcher (or wake it up)."""
        hand_over = self._handovers.get(msg.channel)
        if row_id is not None and reply is not None and hand_over is not None:
            # committed: the dispatcher sends it without reading it back
            hand_over(row_id, msg.chat_id, reply.text, reply.buttons, msg.message_id)
        else:
            self._wake(msg.channel)

    def _wake(self, channel: str) -> None:
        for wake in self._wakers.get(channel, ()):
            wake()


_TOO_OLD = "offline: older than offlineMaxAgeMinutes"


def _reads_only(message: InboundMessage) -> bool:
    """A command that only reads (``/status``, ``/help``…): it may run inside the write
    transaction that stores its message."""
    if message.kind not in ("text", "edit"):
        return False
    parsed = commands.parse_command(message.text)
    command = commands.find(parsed[0]) if parsed is not None else None
    return command is not None and command.reads_only


def _lane_key(message: InboundMessage) -> str:
    return f"{message.channel}:{message.peer}"


async def _mark(inbox_id: int, status: inbox.InboxStatus, outcome: str | None, tx: Tx) -> None:
    await inbox.mark(tx, inbox_id, status, outcome)
