"""The outbox dispatcher: pending outbox rows of one channel → ``Channel.send``.

Rows go out in order per chat (different chats concurrently). Each row's
Markdown is rendered for the channel and split into parts
(:func:`polpo.gateway.format.render_parts`); ``parts_sent`` records progress
so a restart resumes after the parts already sent. Every part's channel
message id is stored in ``outbox_parts`` (a self-chat echo of any part is
recognised, also after a restart; the first part's id is also the row's
``channel_message_id``, which reactions to an approval alert look up);
buttons ride on the last part.

Exactly once: when the channel mints message ids (WhatsApp's sender chooses
them; see :func:`polpo.channels.base.new_message_id`), the ids of a row's
parts are assigned before its first send and stored as parts "sending" in
one transaction; each part is sent with its id, and after a crash it is
sent again with the same id, so the recipient's app drops the copy. A
channel whose network chooses ids (Telegram) cannot do that: each part's
progress is committed before the next part goes out, so after a crash at
most the one part in flight per chat is sent again — never a whole reply or
batch. A retryable :class:`ChannelError` (the
channel is down) leaves the row pending with a growing backoff, and holds
back the rows after it in that chat; a connection coming back flushes at
once. A non-retryable error marks the row failed and moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from polpo.channels.base import Button, Channel, OutboundMessage, new_message_id
from polpo.errors import ChannelError
from polpo.gateway.format import render_parts
from polpo.host import cancel_and_wait, wake_or_timeout
from polpo.store import outbox
from polpo.store.batch import WriteBatcher
from polpo.store.outbox import PendingRow as _Row
from polpo.store.outbox import SentPart as _Part
from polpo.store.tx import Tx

if TYPE_CHECKING:
    from polpo.app import Polpo

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: Seconds before the n-th retry of a row whose send failed (then the last value).
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Unexpected (non-ChannelError) failures of one row before it is given up.
MAX_UNEXPECTED_FAILURES = 5
#: Seconds between two sends to the same chat, per channel type (WhatsApp frowns on bursts).
DEFAULT_PACE_SECONDS: dict[str, float] = {"whatsapp": 0.3}
#: Rows read per pass.
PAGE = 1000


class OutboxDispatcher:
    def __init__(
        self,
        app: Polpo,
        channel: Channel,
        *,
        owner: str | None = None,
        batcher: WriteBatcher | None = None,
        pace_seconds: float | None = None,
        sleep: Sleep = asyncio.sleep,
        poll_seconds: float = 2.0,
        on_sent: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.channel = channel
        self.owner = owner
        self._owns_batcher = batcher is None
        self.batcher = batcher or app.ctx.write_batcher()
        self.pace_seconds = (
            DEFAULT_PACE_SECONDS.get(channel.name, 0.0) if pace_seconds is None else pace_seconds
        )
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        self.on_sent = on_sent
        self.name = f"outbox-{channel.name}"
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._retry_now = False
        # Rows the gateway just committed, handed over in memory (no read-back). They are
        # sent without a read only while nothing else can be pending: the last read found
        # every row sent, and no one else has enqueued since (``_stale`` False).
        self._handed: list[_Row] = []
        self._stale = True
        # ids of rows a pass has already taken (read or handed): never sent twice
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        #: rows sent / failed since start
        self.sent = 0
        self.failed = 0

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._owns_batcher:
            await self.batcher.close()

    def wake(self) -> None:
        """New rows were committed: send them now rather than at the next poll."""
        self._stale = True
        self._wake.set()

    def hand_over(
        self,
        row_id: int,
        chat_id: str,
        text: str,
        buttons: list[dict[str, str]] | None,
        reply_to: str | None = None,
    ) -> None:
        """A new pending row, already committed: send it without reading it back."""
        if row_id in self._seen:
            return  # a read already took it
        self._handed.append(_Row(row_id, chat_id, text, buttons, 0, 0, None, None, None, reply_to))
        self._wake.set()

    def retry_now(self) -> None:
        """The channel is (re)connected: forget backoffs and send what is waiting."""
        self._retry_now = True
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                busy = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass on %s failed", self.channel.name)
                self._stale = True
                busy = False
            if busy:
                continue
            if not await wake_or_timeout(self._wake, self.poll_seconds):
                self._stale = True  # rows of other processes: read at every poll

    # -- sending -----------------------------------------------------------------

    async def flush(self) -> bool:
        """Send every row that is due; True when some row went out (there may be more)."""
        async with self._lock:
            return await self._flush_locked()

    async def _pass(self) -> bool:
        """One pass of the loop: the rows handed over when nothing else can be pending,
        else a full :meth:`flush`."""
        async with self._lock:
            if self._stale or self._retry_now or self.app.outbox_ready.is_set():
                # someone else enqueued (or may have): read, to keep each chat in order
                return await self._flush_locked()
            rows = [r for r in self._handed if r.id not in self._seen]
            self._handed.clear()
            if not rows:
                return False
            return await self._send(rows, self.app.clock.now())

    async def _flush_locked(self) -> bool:
        # Rows handed over until now are committed, so this read finds them (or the page
        # is full and a later read will); rows handed over during it are skipped if it
        # took them (``_seen``).
        self._stale = False
        self._handed.clear()
        if self._retry_now:
            self._retry_now = False
            await self.batcher.run(self._clear_backoff)
        rows = await self._pending()
        if len(rows) >= PAGE:
            self._stale = True
        if not rows:
            return False
        return await self._send(rows, self.app.clock.now())

    async def _send(self, rows: list[_Row], now: float) -> bool:
        for row in rows:
            self._take(row.id)
        chats: dict[str, list[_Row]] = {}
        for row in rows:
            chats.setdefault(row.chat_id, []).append(row)
        if len(chats) == 1:  # one chat (an idle gateway answering someone): no task to start
            return await self._send_chat(rows, now)
        results = await asyncio.gather(
            *(self._send_chat(chat_rows, now) for chat_rows in chats.values())
        )
        return any(results)

    def _take(self, row_id: int) -> None:
        if row_id in self._seen:
            return
        self._seen.add(row_id)
        self._seen_order.append(row_id)
        if len(self._seen_order) > 4 * PAGE:
            self._seen.discard(self._seen_order.popleft())

    async def _send_chat(self, rows: list[_Row], now: float) -> bool:
        progressed = False
        for i, row in enumerate(rows):
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                self._stale = True  # still pending: the next pass reads again
                break  # waiting for a retry: later rows of this chat wait too
            if i and self.pace_seconds > 0:
                await self.sleep(self.pace_seconds)
            if not await self._send_row(row):
                self._stale = True
                break
            progressed = True
        return progressed

    async def _send_row(self, row: _Row) -> bool:
        """Send one row's remaining parts; False when it must be retried later."""
        try:
            parts = render_parts(row.text, self.channel.text_format, self.channel.max_text_length)
        except Exception as e:
            log.exception("outbox row %s cannot be rendered", row.id)
            await self.batcher.run(self._recorder(row.id, status="failed", error=f"render: {e}"))
            self.failed += 1
            return True
        buttons = tuple(
            Button(str(b.get("label", "")), str(b.get("command", "")))
            for b in (row.buttons or [])
            if isinstance(b, dict)
        )
        first_id = row.channel_message_id
        assigned = await self._assign_ids(row, len(parts))
        for n in range(row.parts_sent, len(parts)):
            last = n == len(parts) - 1
            if n > row.parts_sent and self.pace_seconds > 0:
                await self.sleep(self.pace_seconds)
            message = OutboundMessage(
                row.chat_id,
                parts[n],
                buttons=buttons if last else (),
                message_id=assigned.get(n),
                reply_to=row.reply_to if n == 0 else None,  # a reply quotes what it answers
            )
            try:
                result = await self.channel.send(message)
            except ChannelError as e:
                return await self._failed(row, n, first_id, e.message, retryable=e.retryable)
            except Exception as e:
                log.exception("sending outbox row %s on %s failed", row.id, self.channel.name)
                retry = row.attempts + 1 < MAX_UNEXPECTED_FAILURES
                return await self._failed(
                    row, n, first_id, f"{type(e).__name__}: {e}", retryable=retry
                )
            sent_id = result.message_id or assigned.get(n)
            if sent_id is not None:
                if n == 0:
                    first_id = sent_id
                if self.on_sent is not None and sent_id != assigned.get(n):
                    self.on_sent(sent_id)
            part = _Part(n, sent_id, n in assigned)
            if not last:
                await self.batcher.run(
                    self._recorder(row.id, parts_sent=n + 1, channel_message_id=first_id, part=part)
                )
        sent_parts = len(parts)
        await self.batcher.run(
            self._recorder(
                row.id,
                status="sent",
                parts_sent=sent_parts,
                channel_message_id=first_id,
                sent=True,
                error=None,
                part=part if parts else None,
            )
        )
        self.sent += 1
        return True

    async def _assign_ids(self, row: _Row, count: int) -> Mapping[int, str]:
        """The message id of each part still to send, when the channel mints ids:
        those assigned by an earlier attempt, and new ones for the rest, stored as
        parts "sending" (one transaction) before anything is sent. Empty when the
        network chooses ids."""
        missing = [n for n in range(row.parts_sent, count) if n not in row.assigned]
        if not missing:
            return row.assigned
        first = new_message_id(self.channel)
        if first is None:
            return row.assigned
        fresh = {missing[0]: first}
        for n in missing[1:]:
            fresh[n] = new_message_id(self.channel) or f"{first}-{n}"
        await self.batcher.run(partial(self._store_assigned, row.id, fresh))
        if self.on_sent is not None:
            for mid in fresh.values():  # an echo may arrive before send() returns
                self.on_sent(mid)
        return {**row.assigned, **fresh}

    async def _store_assigned(self, row_id: int, ids: Mapping[int, str], tx: Tx) -> None:
        await outbox.assign_part_ids(tx.conn, row_id, self.channel.name, ids, tx.now)

    async def _failed(
        self, row: _Row, parts_sent: int, first_id: str | None, error: str, *, retryable: bool
    ) -> bool:
        if not retryable:
            log.warning("outbox row %s to %s failed for good: %s", row.id, row.chat_id, error)
            await self.batcher.run(
                self._recorder(
                    row.id,
                    status="failed",
                    parts_sent=parts_sent,
                    channel_message_id=first_id,
                    error=error,
                    attempt=True,
                )
            )
            self.failed += 1
            return True
        delay = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS) - 1)]
        log.info("outbox row %s to %s: %s; retrying in %.0f s", row.id, row.chat_id, error, delay)
        await self.batcher.run(
            self._recorder(
                row.id,
                parts_sent=parts_sent,
                channel_message_id=first_id,
                error=error,
                attempt=True,
                retry_in=delay,
            )
        )
        return False

    # -- store -------------------------------------------------------------------

    async def _pending(self) -> list[_Row]:
        mints = getattr(self.channel, "new_message_id", None) is not None
        async with self.app.store.read() as conn:
            return await outbox.pending(conn, self.channel.name, self.owner, PAGE, mints=mints)

    async def _clear_backoff(self, tx: Tx) -> None:
        await outbox.clear_backoff(tx.conn, self.channel.name, self.owner)

    def _recorder(self, row_id: int, **kw: Any) -> Callable[[Tx], Awaitable[None]]:
        """A write step recording what a send did to row ``row_id`` (see ``outbox.record``)."""
        channel = self.channel.name

        async def step(tx: Tx) -> None:
            await outbox.record(tx.conn, row_id, channel, tx.now, **kw)

        return step
