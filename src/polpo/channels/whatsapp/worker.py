"""The WhatsApp worker: neonize in a child process, spoken to in JSON lines.

Run as ``python -m polpo.channels.whatsapp.worker --auth-dir DIR [--bot-tag]``
by :class:`~polpo.channels.whatsapp.channel.WhatsAppChannel` (and by
``polpo whatsapp login``). Commands arrive on stdin, events leave on stdout,
logs go to stderr (see :mod:`polpo.channels.whatsapp.protocol`).

Why a process of its own: neonize's Go core can abort the whole process on
some errors, leaks a file descriptor per failed connect, calls back on
foreign threads, and ``import neonize`` reconfigures logging. Here a crash or
a leak ends with the process; the parent restarts it with backoff.

Threads: the main thread reads stdin; ``ack`` is handled at once, every other
command runs in order on one command thread (so a slow send never delays an
ack); neonize's blocking ``connect()`` runs on its own thread and calls our
event handlers from a Go thread. A message handler only queues the event and
returns: the *pump* thread reads the queued events, drops what is not for
Polpo, appends the rest to the journal (:mod:`.journal`, one ``fsync`` per
batch) and only then hands them to the parent. The parent's ``ack`` (the
gateway stored it) trims the journal; a worker that starts replays what was
never acknowledged. Holding neonize's callback until the gateway answers
would delay nothing (whatsmeow has sent WhatsApp's delivery receipt already)
and would block every other event — LoggedOut, StreamReplaced — behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from polpo.channels.base import InboundMessage
from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.account import DB_NAME, linked_account, secure
from polpo.channels.whatsapp.journal import JOURNAL_NAME, Journal
from polpo.channels.whatsapp.ledger import LEDGER_NAME, SentLedger, SentPart

log = logging.getLogger("polpo.whatsapp.worker")

#: the most queued events journaled with one fsync
MAX_BATCH = 512
#: how long a stopping worker waits for the pump to journal what is queued
PUMP_DRAIN_SECONDS = 5.0
#: how long the main thread waits for a stop to finish before the process just ends
STOP_SECONDS = 15.0
#: how long the first QR code is valid, and each one after it (whatsmeow's timings)
FIRST_QR_SECONDS = 60
NEXT_QR_SECONDS = 20
#: exit codes the parent reads: 0 done, 3 connect failed (transient), 4 fatal (do not retry)
EXIT_TRANSIENT = 3
EXIT_FATAL = 4

#: ConnectFailure / LoggedOut reasons that mean the credentials are void
_LOGOUT_REASONS = {"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"}

CLIENT_OUTDATED = (
    "WhatsApp says this client is outdated: upgrade neonize (pip install -U neonize), "
    "then try again"
)
SCANNED_WITHOUT_MULTIDEVICE = (
    "the phone that scanned the code cannot link devices: update WhatsApp on the phone, "
    "then scan the code again"
)


ClientFactory = Callable[[Path, Callable[[str], None]], Any]
#: how many received messages are remembered for quotes and read receipts
RECENT_MEMORY = 2000


@dataclass(frozen=True)
class Recent:
    """A received message as a reply or a read receipt needs it."""

    #: the sender's address as the message used it, without device (``…@lid`` in LID groups)
    sender: str
    #: the content to quote (a ``waE2E.Message``)
    content: Any


def make_client(db: Path, on_login_status: Callable[[str], None]) -> Any:
    """A neonize client whose QR-login end states reach ``on_login_status``.

    neonize hands whatsmeow's QR channel states ("success", "timeout",
    "err-client-outdated", "err-scanned-without-multidevice") to
    ``NewClient.__onLoginStatus``, which only prints them; the subclass
    overrides that (name-mangled) method. A test checks the seam still exists.
    """
    from neonize.client import NewClient

    class Client(NewClient):  # type: ignore[misc]
        def _NewClient__onLoginStatus(self, _uuid: Any, status: Any) -> None:
            text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
            on_login_status(text)

    return Client(str(db), uuid="polpo")


class Output:
    """Protocol lines to the parent; one writer at a time, flushed per line."""

    def __init__(self, stream: IO[str], on_gone: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        #: what to do when the parent is gone (in the worker: end the process now)
        self._on_gone = on_gone or _exit_quietly

    def emit(self, event: p.Event) -> None:
        self.emit_line(p.encode(event))

    def emit_line(self, line: str) -> None:
        """One protocol line already encoded (``p.encode``; the journal keeps the same)."""
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # The parent is gone: nobody is left to talk to.
                self._on_gone()


def _exit_quietly() -> None:
    os._exit(0)


class Worker:
    def __init__(
        self,
        auth_dir: Path,
        out: Output,
        *,
        make_client: ClientFactory | None = None,
        groups: bool = False,
        inbound: bool = True,
    ) -> None:
        self.auth_dir = auth_dir
        self.out = out
        self.client: Any = None
        self.own_phone: str | None = None
        self.own_lid: str | None = None
        self.sent_ids: set[str] = set()
        self.make_client = make_client
        #: what the worker will hand on: group messages (groupPolicy open)? anything (inbound)?
        self.groups = groups
        self.inbound = inbound
        self.journal: Journal | None = None
        self.ledger: SentLedger | None = None
        #: events neonize handed over, waiting for the pump (None: the pump ends)
        self.queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.pump_thread: threading.Thread | None = None
        #: message id → what a reply or a read receipt needs of it (the last few only)
        self.recent: OrderedDict[str, Recent] = OrderedDict()
        self.commands: queue.Queue[p.Command | None] = queue.Queue()
        self.stopping = threading.Event()
        self.command_thread: threading.Thread | None = None
        self.qr_count = 0
        self.pair_phone: str | None = None
        self.pair_requested = False
        self.connect_thread: threading.Thread | None = None
        #: connected to WhatsApp right now (between Connected and Disconnected)
        self.connected = False
        #: senders already told their last message could not be read (until one is read)
        self.told_unreadable: set[str] = set()
        self.read_own_account()

    def read_own_account(self) -> None:
        """Who we are, from the device store (whatsmeow's credentials).

        whatsmeow delivers the messages that arrived while offline *before*
        ``Connected``: without this the owner's self-chat in that catch-up
        would look like someone else's chat.
        """
        account = linked_account(self.auth_dir)
        if account is not None:
            self.own_phone = account.phone or self.own_phone
            self.own_lid = account.lid or self.own_lid

    # -- stdin --------------------------------------------------------------------

    def read_commands(self, stdin: IO[bytes]) -> None:
        self.command_thread = threading.Thread(
            target=self._command_loop, name="commands", daemon=True
        )
        self.command_thread.start()
        for raw in iter(stdin.readline, b""):
            if not raw.strip():
                continue
            try:
                command = p.decode_command(raw)
            except p.ProtocolError as e:
                self.out.emit(p.Error(message=str(e), code="bad_command", retryable=False))
                continue
            if isinstance(command, p.Ack):
                if self.journal is not None:
                    self.journal.ack(command.message_id)
                continue
            self.commands.put(command)
            if isinstance(command, p.Stop):
                break
        # stdin closed or stop: the parent wants us gone either way
        self.commands.put(p.Stop())

    def _command_loop(self) -> None:
        while True:
            command = self.commands.get()
            if command is None:
                return
            try:
                self.handle(command)
            except Exception as e:  # one failed command never ends the worker
                log.exception("whatsapp worker: %s failed", command.TYPE)
                ref = getattr(command, "ref", None)
                self.out.emit(p.Error(message=f"{command.TYPE} failed: {e}", ref=ref or None))

    def handle(self, command: p.Command) -> None:
        if isinstance(command, p.Connect):
            self.pair_phone = command.phone
            self.connect()
        elif isinstance(command, p.PairPhone):
            self.pair_phone = command.phone
            if self.client is not None:
                self._request_pair_code()
        elif isinstance(command, p.SendText):
            self.send_text(command)
        elif isinstance(command, p.Typing):
            self.typing(command)
        elif isinstance(command, p.MarkRead):
            self.mark_read(command)
        elif isinstance(command, p.Download):
            self.download(command)
        elif isinstance(command, p.Logout):
            self.logout(command)
        elif isinstance(command, p.Stop):
            self.stop(0)

    # -- connection ------------------------------------------------------------------

    def connect(self) -> None:
        if self.connect_thread is not None:
            return
        secure(self.auth_dir)
        self.read_own_account()
        self.open_journal()
        self.open_ledger()
        self.pump_thread = threading.Thread(target=self.pump, name="inbound", daemon=True)
        self.pump_thread.start()
        factory = self.make_client or make_client
        self.client = factory(self.auth_dir / DB_NAME, self.on_login_status)
        self._register(self.client)
        self.connect_thread = threading.Thread(target=self._run_client, name="neonize")
        self.connect_thread.start()

    def _run_client(self) -> None:
        from neonize.exc import NeonizeError

        try:
            self.client.connect()
        except NeonizeError as e:
            if not self.stopping.is_set():
                self.out.emit(
                    p.Error(
                        message=_connect_failure(str(e)),
                        code="connect_failed",
                        retryable=True,
                        fatal=True,
                    )
                )
                self.exit(EXIT_TRANSIENT)
            return
        except Exception as e:
            if not self.stopping.is_set():
                log.exception("whatsapp worker: neonize failed")
                self.out.emit(p.Error(message=_short(repr(e)), code="engine_failed", fatal=True))
                self.exit(EXIT_TRANSIENT)
            return
        if not self.stopping.is_set():
            self.out.emit(p.Disconnected(reason="the WhatsApp engine stopped"))
            self.exit(EXIT_TRANSIENT)

    def _register(self, client: Any) -> None:
        from neonize.events import (
            ClientOutdatedEv,
            ConnectedEv,
            ConnectFailureEv,
            DisconnectedEv,
            KeepAliveRestoredEv,
            KeepAliveTimeoutEv,
            LoggedOutEv,
            MessageEv,
            OfflineSyncCompletedEv,
            OfflineSyncPreviewEv,
            PairStatusEv,
            ReceiptEv,
            StreamErrorEv,
            StreamReplacedEv,
            TemporaryBanEv,
            UndecryptableMessageEv,
        )

        # neonize keeps one handler per event type: register each exactly once.
        # Every connection event whatsmeow emits (and neonize forwards) has one:
        # see docs/whatsapp.md, "Connection and supervision".
        client.event.qr(self.on_qr)
        client.event(ConnectedEv)(self.on_connected)
        client.event(PairStatusEv)(self.on_pair_status)
        client.event(DisconnectedEv)(self.on_disconnected)
        client.event(KeepAliveTimeoutEv)(self.on_keepalive_timeout)
        client.event(KeepAliveRestoredEv)(self.on_keepalive_restored)
        client.event(LoggedOutEv)(self.on_logged_out)
        client.event(StreamReplacedEv)(self.on_replaced)
        client.event(StreamErrorEv)(self.on_stream_error)
        client.event(ConnectFailureEv)(self.on_connect_failure)
        client.event(TemporaryBanEv)(self.on_temporary_ban)
        client.event(ClientOutdatedEv)(self.on_client_outdated)
        client.event(OfflineSyncPreviewEv)(self.on_offline_sync_preview)
        client.event(OfflineSyncCompletedEv)(self.on_offline_sync_completed)
        client.event(MessageEv)(self.on_message)
        client.event(UndecryptableMessageEv)(self.on_undecryptable)
        client.event(ReceiptEv)(self.on_receipt)

    def on_qr(self, _client: Any, data: bytes) -> None:
        if self.pair_phone:
            if not self.pair_requested:
                self.pair_requested = True
                threading.Thread(target=self._request_pair_code, daemon=True).start()
            return
        seconds = FIRST_QR_SECONDS if self.qr_count == 0 else NEXT_QR_SECONDS
        self.qr_count += 1
        self.out.emit(p.Qr(code=data.decode("utf-8", "replace"), seconds=seconds))

    def _request_pair_code(self) -> None:
        phone = "".join(c for c in (self.pair_phone or "") if c.isdigit())
        try:
            code = self.client.PairPhone(phone, show_push_notification=True)
        except Exception as e:
            self.out.emit(
                p.Error(
                    message=f"pairing code refused: {_short(str(e))}",
                    code="pair_failed",
                    retryable=False,
                )
            )
            return
        self.out.emit(p.PairCode(code=str(code)))

    def on_pair_status(self, _client: Any, ev: Any) -> None:
        if ev.Error:
            self.out.emit(
                p.Error(message=f"linking failed: {ev.Error}", code="pair_failed", retryable=False)
            )
            return
        secure(self.auth_dir)
        self.out.emit(
            p.Paired(phone=ev.ID.User, jid=_jid(ev.ID), business_name=ev.BusinessName or "")
        )

    def on_login_status(self, status: str) -> None:
        """How a QR login ended (whatsmeow's QR channel): one clear line for the user."""
        if status == "timeout":
            self.out.emit(
                p.Error(
                    message="the QR codes ran out before a phone scanned one",
                    code="qr_timeout",
                    fatal=True,
                )
            )
            self.exit(EXIT_TRANSIENT)
        elif status == "err-client-outdated":
            self.on_client_outdated(self.client, None)
        elif status == "err-scanned-without-multidevice":
            self.out.emit(
                p.Error(
                    message=SCANNED_WITHOUT_MULTIDEVICE,
                    code="scanned_without_multidevice",
                )
            )
        elif status != "success":
            log.warning("whatsapp worker: login ended with %r", status)

    def on_connected(self, client: Any, _ev: Any) -> None:
        secure(self.auth_dir)
        push_name: str | None = None
        jid = ""
        try:
            me = client.get_me()
            self.own_phone = me.JID.User or self.own_phone
            self.own_lid = me.LID.User or self.own_lid
            push_name = me.PushName or None
            jid = _jid(me.JID)
        except Exception:
            log.warning("whatsapp worker: could not read the linked account", exc_info=True)
        self.connected = True
        self._presence(available=True)
        self.out.emit(
            p.Connected(phone=self.own_phone or "", jid=jid, lid=self.own_lid, push_name=push_name)
        )

    def _presence(self, *, available: bool) -> None:
        """Online (after each connect) or offline (before a clean stop).

        whatsmeow's docs ask for "available" once connected: without it delivery
        receipts go out as "inactive" and the typing indicator may not show.
        """
        from neonize.utils.enum import Presence

        try:
            self.client.send_presence(Presence.AVAILABLE if available else Presence.UNAVAILABLE)
        except Exception as e:  # no push name yet, or the socket is gone: not worth failing
            log.info("whatsapp worker: presence not sent: %s", _short(str(e)))

    def on_disconnected(self, _client: Any, _ev: Any) -> None:
        self.connected = False
        if not self.stopping.is_set():
            self.out.emit(p.Disconnected(reason="connection lost; reconnecting"))

    def on_keepalive_timeout(self, _client: Any, ev: Any) -> None:
        since = time.strftime("%H:%M:%S", time.localtime(ev.LastSuccess)) if ev.LastSuccess else "?"
        self.out.emit(
            p.Degraded(
                reason=f"WhatsApp missed {ev.ErrorCount} keepalive ping(s) since {since}; "
                "still sending"
            )
        )

    def on_keepalive_restored(self, _client: Any, _ev: Any) -> None:
        self.out.emit(p.Restored())

    def on_stream_error(self, _client: Any, ev: Any) -> None:
        """A stream error whatsmeow does not know: it neither reconnects nor stops, so
        the worker ends and the parent starts a fresh one (with backoff)."""
        self.out.emit(
            p.Error(
                message=f"WhatsApp stream error {ev.Code or '?'}; restarting",
                code="stream_error",
                fatal=True,
            )
        )
        self.exit(EXIT_TRANSIENT)

    def on_offline_sync_preview(self, _client: Any, ev: Any) -> None:
        log.info("whatsapp worker: catching up on %s missed message(s)", ev.Messages)

    def on_offline_sync_completed(self, _client: Any, ev: Any) -> None:
        log.info("whatsapp worker: caught up (%s event(s))", ev.Count)

    def on_logged_out(self, _client: Any, ev: Any) -> None:
        reason = _reason_name(ev.Reason)
        self.out.emit(p.LoggedOut(reason=f"unlinked on WhatsApp ({reason})"))
        self.stop(0, goodbye=False)

    def on_replaced(self, _client: Any, _ev: Any) -> None:
        self.out.emit(p.Replaced())
        self.stop(0, goodbye=False)

    def on_connect_failure(self, _client: Any, ev: Any) -> None:
        reason = _reason_name(ev.Reason)
        if reason in _LOGOUT_REASONS:
            self.out.emit(p.LoggedOut(reason=f"WhatsApp refused the credentials ({reason})"))
            self.stop(0, goodbye=False)
        elif reason in ("TEMP_BANNED", "CLIENT_OUTDATED", "BAD_USER_AGENT"):
            self.out.emit(
                p.Error(
                    message=f"WhatsApp refused the connection: {reason} {ev.Message}".strip(),
                    code=reason.lower(),
                    retryable=False,
                    fatal=True,
                )
            )
            self.exit(EXIT_FATAL)
        else:
            self.out.emit(
                p.Error(
                    message=f"connection failed: {reason} {ev.Message}".strip(),
                    code="connect_failed",
                    fatal=True,
                )
            )
            self.exit(EXIT_TRANSIENT)

    def on_temporary_ban(self, _client: Any, ev: Any) -> None:
        self.out.emit(
            p.Error(
                message=f"this number is temporarily banned by WhatsApp (code {ev.Code}, expires in {ev.Expire} s)",
                code="temp_banned",
                retryable=False,
                fatal=True,
            )
        )
        self.exit(EXIT_FATAL)

    def on_client_outdated(self, _client: Any, _ev: Any) -> None:
        self.out.emit(
            p.Error(
                message=CLIENT_OUTDATED,
                code="client_outdated",
                retryable=False,
                fatal=True,
            )
        )
        self.exit(EXIT_FATAL)

    # -- messages ------------------------------------------------------------------------

    def open_journal(self) -> None:
        """Open the journal and replay what the last run never had acknowledged."""
        try:
            self.journal = Journal.open(self.auth_dir / JOURNAL_NAME)
        except OSError as e:
            log.error("whatsapp worker: no journal (%s); messages are handed on unjournaled", e)
            self.journal = None
            return
        from neonize.proto.Neonize_pb2 import Message as MessageEv

        for entry in self.journal.unacked():
            with contextlib.suppress(Exception):  # a reply may quote it; nothing more
                self.remember(entry.message_id, MessageEv.FromString(entry.raw))
            self.out.emit_line(entry.line)

    def open_ledger(self) -> None:
        try:
            self.ledger = SentLedger.open(self.auth_dir / LEDGER_NAME)
        except OSError as e:
            log.error("whatsapp worker: no sent ledger (%s); a resend may repeat a part", e)
            self.ledger = None

    def on_message(self, _client: Any, ev: Any) -> None:
        self.queue.put(("message", ev))

    def on_undecryptable(self, _client: Any, ev: Any) -> None:
        self.queue.put(("undecryptable", ev))

    def pump(self) -> None:
        """Take queued events in batches (see :meth:`hand_over`) until told to end."""
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            done = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch.append(more)
            self.hand_over(batch)
            if done:
                return

    def drain(self) -> None:
        """Hand over whatever is queued now, on this thread (tests; no pump running)."""
        batch: list[tuple[str, Any]] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                batch.append(item)
        self.hand_over(batch)

    def hand_over(self, batch: list[tuple[str, Any]]) -> None:
        """Read each event, journal what is for Polpo (one fsync), then tell the parent."""
        ready: list[tuple[InboundMessage, Any]] = []
        for kind, ev in batch:
            message = self.read(kind, ev)
            if message is not None:
                ready.append((message, ev))
        if not ready:
            return
        lines = [p.encode(p.MessageReceived(message=p.inbound_to_wire(m))) for m, _ in ready]
        if self.journal is not None:
            try:
                self.journal.append(
                    [
                        (m.message_id, ev.SerializePartialToString(), line)
                        for (m, ev), line in zip(ready, lines, strict=True)
                    ]
                )
            except OSError as e:  # a full disk: hand them on anyway (the parent stores them)
                log.error("whatsapp worker: cannot journal %d message(s): %s", len(ready), e)
        for m, ev in ready:
            if m.kind not in ("undecryptable", "reaction"):  # nothing a reply could quote
                self.remember(m.message_id, ev)
        for line in lines:
            self.out.emit_line(line)

    def remember(self, message_id: str, ev: Any) -> None:
        """Keep what a reply to this message needs (its sender's address, its content),
        in memory, for the last :data:`RECENT_MEMORY` messages."""
        from polpo.channels.whatsapp.normalize import quotable

        source = ev.Info.MessageSource
        sender = source.Sender if source.Sender.User else source.Chat
        content = ev.Message if ev.HasField("Message") else ev.Raw
        self.recent[message_id] = Recent(sender=_jid(sender), content=quotable(content))
        self.recent.move_to_end(message_id)
        while len(self.recent) > RECENT_MEMORY:
            self.recent.popitem(last=False)

    def read(self, kind: str, ev: Any) -> InboundMessage | None:
        """The message an event carries for Polpo, or None (not a message, or not for Polpo)."""
        from polpo.channels.whatsapp.normalize import (
            OwnAccount,
            for_polpo,
            normalize,
            normalize_undecryptable,
        )

        own = OwnAccount(self.own_phone, self.own_lid)
        try:
            if kind == "undecryptable":
                log.info("whatsapp worker: could not decrypt %s", ev.Info.ID)
                message = normalize_undecryptable(
                    ev, own=own, resolve_lid=self._resolve_lid, now=time.time()
                )
            else:
                message = normalize(
                    ev,
                    own=own,
                    sent_ids=self.sent_ids,
                    resolve_lid=self._resolve_lid,
                    now=time.time(),
                )
        except Exception:
            log.exception("whatsapp worker: a message could not be read; skipped")
            return None
        if message is None or not self.inbound or not for_polpo(message, groups=self.groups):
            return None
        if message.kind == "undecryptable":
            # asked once to send it again, until one of theirs can be read
            if message.peer in self.told_unreadable:
                return None
            self.told_unreadable.add(message.peer)
        else:
            self.told_unreadable.discard(message.peer)
        return message

    def _resolve_lid(self, lid: str) -> str | None:
        from neonize.utils.jid import build_jid

        pn = self.client.get_pn_from_lid(build_jid(lid, "lid"))
        return str(pn.User) if pn.User else None

    def on_receipt(self, _client: Any, ev: Any) -> None:
        from neonize.proto.Neonize_pb2 import Receipt

        kind = Receipt.ReceiptType.Name(ev.Type).lower() if ev.Type else "delivered"
        self.out.emit(
            p.Receipt(chat=_jid(ev.MessageSource.Chat), message_ids=list(ev.MessageIDs), kind=kind)
        )

    # -- outbound ------------------------------------------------------------------------

    def _require_client(self) -> Any:
        if self.client is None:
            raise RuntimeError("not connected (send connect first)")
        return self.client

    def send_text(self, command: p.SendText) -> None:
        assigned = command.message_id
        ledger = self.ledger
        if assigned and ledger is not None:
            done = ledger.get(assigned)
            if done is not None:  # sent before a crash: answer, do not send twice
                self.sent_ids.add(done.message_id)
                self.out.emit(
                    p.Sent(ref=command.ref, message_id=done.message_id, timestamp=done.timestamp)
                )
                return
        try:
            client = self._require_client()
            response = client.send_message(_parse_jid(command.chat), self.reply(command))
        except Exception as e:
            self.out.emit(
                p.Error(
                    message=f"send failed: {_short(str(e))}",
                    ref=command.ref,
                    code="send_failed",
                    retryable=True,
                )
            )
            return
        message_id = str(response.ID)
        self.sent_ids.add(message_id)
        if len(self.sent_ids) > 10_000:
            self.sent_ids.clear()  # the parent keeps its own set; this one only bounds memory
            self.sent_ids.add(message_id)
        ts = int(response.Timestamp)
        timestamp = ts / 1000.0 if ts > 100_000_000_000 else float(ts)
        if assigned and ledger is not None:
            try:  # on disk before the parent hears of it
                ledger.record(assigned, SentPart(message_id, timestamp))
            except OSError as e:  # a full disk: a crash now could repeat this part
                log.error("whatsapp worker: cannot record the sent part %s: %s", assigned, e)
        self.out.emit(p.Sent(ref=command.ref, message_id=message_id, timestamp=timestamp))

    def typing(self, command: p.Typing) -> None:
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia

        state = (
            ChatPresence.CHAT_PRESENCE_COMPOSING
            if command.on
            else ChatPresence.CHAT_PRESENCE_PAUSED
        )
        try:
            self._require_client().send_chat_presence(
                _parse_jid(command.chat), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
            )
        except Exception as e:
            log.debug("whatsapp worker: typing in %s failed: %s", command.chat, e)

    def reply(self, command: p.SendText) -> Any:
        """The message to send: plain text, or — for a ``reply_to`` this worker received
        — text quoting it, as WhatsApp's own clients build a reply."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
            ContextInfo,
            ExtendedTextMessage,
            Message,
        )

        quoted_id = (command.reply_to or "").split(":edit:", 1)[0]
        quoted = self.recent.get(quoted_id) if quoted_id else None
        if quoted is None:
            return Message(conversation=command.text)
        context = ContextInfo(
            stanzaID=quoted_id, participant=quoted.sender, quotedMessage=quoted.content
        )
        return Message(
            extendedTextMessage=ExtendedTextMessage(text=command.text, contextInfo=context)
        )

    def mark_read(self, command: p.MarkRead) -> None:
        """Read receipts. In groups the sender is named by the address its message came
        from (its LID in a LID-addressed group), when this worker received it."""
        from neonize.utils.enum import ReceiptType

        known = self.recent.get(command.message_ids[0]) if command.message_ids else None
        sender = known.sender if known is not None else command.sender
        try:
            self._require_client().mark_read(
                *command.message_ids,
                chat=_parse_jid(command.chat),
                sender=_parse_jid(sender),
                receipt=ReceiptType.READ,
                timestamp=int(command.timestamp) or None,
            )
        except Exception as e:
            log.debug("whatsapp worker: mark read in %s failed: %s", command.chat, e)

    def download(self, command: p.Download) -> None:
        """An attachment the parent wants (an admitted peer's): into a new 0600 file."""
        from polpo.channels.attachments import write_new_file
        from polpo.channels.whatsapp.normalize import declared_size

        def refuse(why: str, retryable: bool = False) -> None:
            self.out.emit(
                p.Error(message=why, ref=command.ref, code="download_failed", retryable=retryable)
            )

        known = self.recent.get(command.message_id)
        if known is None:
            refuse("that message is no longer at hand (received before the worker restarted)")
            return
        declared = declared_size(known.content)
        if declared is None:
            refuse("that message carries no file")
            return
        if declared > command.max_bytes:
            refuse(f"the file is too big ({declared} bytes; at most {command.max_bytes})")
            return
        try:
            data = self._require_client().download_any(known.content)
        except Exception as e:
            refuse(f"download failed: {_short(str(e))}", retryable=True)
            return
        data = bytes(data or b"")
        if len(data) > command.max_bytes:
            refuse(f"the file is too big ({len(data)} bytes; at most {command.max_bytes})")
            return
        path = Path(command.path)
        try:
            write_new_file(path, data)
        except OSError as e:
            refuse(f"cannot write {path}: {e}")
            return
        self.out.emit(p.Downloaded(ref=command.ref, path=str(path), size=len(data)))

    def logout(self, command: p.Logout) -> None:
        try:
            self._require_client().logout()
        except Exception as e:
            self.out.emit(
                p.Error(
                    message=f"logout failed: {_short(str(e))}",
                    ref=command.ref or None,
                    code="logout_failed",
                )
            )
            return
        self.out.emit(p.LoggedOut(reason="logged out by polpo", ref=command.ref or None))
        self.stop(0, goodbye=False)

    # -- ending ----------------------------------------------------------------------------

    def stop(self, code: int, *, goodbye: bool = True) -> None:
        """Disconnect and exit; ``goodbye``: say "unavailable" first (a clean stop).

        What neonize queued before the disconnect is journaled (and handed on)
        first: it was already receipted to WhatsApp.
        """
        self.stopping.set()
        client = self.client
        if goodbye and self.connected and client is not None:
            self._presence(available=False)
        if client is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
        pump = self.pump_thread
        if pump is not None and pump is not threading.current_thread():
            self.queue.put(None)
            pump.join(PUMP_DRAIN_SECONDS)
        if client is not None:
            with contextlib.suppress(Exception):
                client.stop()
        self.exit(code)

    def exit(self, code: int) -> None:
        """End the process now: neonize's threads are not ours to join."""
        self.stopping.set()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _connect_failure(text: str) -> str:
    """whatsmeow's nested dial error, cut to its cause: ``cannot reach WhatsApp
    (lookup web.whatsapp.com …: no such host)``."""
    text = " ".join(text.split())
    for marker in ("dial tcp: ", "dial tcp4: ", "dial tcp6: "):
        if marker in text:
            return f"cannot reach WhatsApp ({_short(text.rsplit(marker, 1)[1], 200)})"
    return f"cannot connect to WhatsApp ({_short(text, 250)})"


def _jid(jid: Any) -> str:
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def _parse_jid(text: str) -> Any:
    from neonize.utils.jid import build_jid

    user, _, server = text.partition("@")
    user = user.split(":", 1)[0]
    return build_jid(user, server or "s.whatsapp.net")


def _reason_name(value: int) -> str:
    from neonize.proto.Neonize_pb2 import ConnectFailureReason

    try:
        return str(ConnectFailureReason.Name(value))
    except ValueError:
        return str(value)


def main(argv: list[str] | None = None, *, make_client: ClientFactory | None = None) -> int:
    """Run the worker; ``make_client`` replaces neonize's client (tests: a fake engine)."""
    parser = argparse.ArgumentParser(prog="python -m polpo.channels.whatsapp.worker")
    parser.add_argument("--auth-dir", required=True, help="where the credentials live")
    parser.add_argument("--bot-tag", action="store_true", help="show WhatsApp's AI badge")
    parser.add_argument(
        "--groups", action="store_true", help="group messages are for Polpo (groupPolicy open)"
    )
    parser.add_argument(
        "--send-only", action="store_true", help="no message is for Polpo (inbound disabled)"
    )
    args = parser.parse_args(argv)

    # The protocol owns the real stdout; anything else printing there (neonize
    # prints some statuses) is sent to stderr instead.
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.umask(0o077)
    if args.bot_tag:
        os.environ.pop("NEONIZE_BOT_TAG", None)
    else:
        os.environ["NEONIZE_BOT_TAG"] = "off"

    level = os.environ.get("POLPO_WHATSAPP_LOG", "WARNING").upper()
    import neonize  # noqa: F401  (reconfigures logging; we take it back below)

    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("whatsmeow").setLevel(level)
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)  # no media here

    worker = Worker(
        Path(args.auth_dir),
        Output(protocol_out),
        make_client=make_client,
        groups=args.groups,
        inbound=not args.send_only,
    )
    try:
        worker.read_commands(sys.stdin.buffer)
    except KeyboardInterrupt:
        worker.commands.put(p.Stop())
    # The command thread performs the stop (presence, disconnect, the journal's
    # last batch) and ends the process; wait for it rather than for ``stopping``,
    # which is set when the stop begins.
    if worker.command_thread is not None:
        worker.command_thread.join(STOP_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
