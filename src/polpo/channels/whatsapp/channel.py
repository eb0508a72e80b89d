"""``WhatsAppChannel``: supervises the neonize worker and reports the connection's state.

The worker (``python -m polpo.channels.whatsapp.worker``) does the WhatsApp
work; this side implements :class:`polpo.channels.base.Channel` and keeps the
supervision:

- it runs a worker only while it holds the account (:mod:`.ownership`: the
  file lock and, given a store, the database lease); while another process
  holds it, it says who and until when (state ``error``) and retries;
- it restarts a worker that exits on a transient failure (no network, a
  crash) with exponential backoff and jitter, 1 s → 60 s, for ever, and
  resets the backoff once a worker connected; a worker that says nothing
  about the connection within ``connect_timeout`` is killed and restarted;
- while the account is not linked it runs the worker in login mode
  (:mod:`.login`): the QR code is in ``status().extra["qr"]`` until a phone
  scans one or the codes run out;
- it stops for good when WhatsApp logs the device out (``logged_out``: run
  ``polpo whatsapp login``), another client replaces this one (``replaced``:
  no fight), or WhatsApp refuses it for good (``error``);
- every inbound message is handed to ``listener.on_message`` and only then
  acknowledged to the worker (which then trims it from its journal);
- sends, typing and read marks go through :mod:`.outbound`.

The worker process itself (spawn, JSON lines, stop/kill) is :mod:`.process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

from polpo.channels.backoff import Backoff
from polpo.channels.base import (
    ChannelListener,
    ChannelStatus,
    InboundMessage,
    OutboundMessage,
    SendResult,
    TextFormat,
)
from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.account import linked_account, wipe_credentials
from polpo.channels.whatsapp.login import (
    LOGIN_HINT,
    NOT_LINKED,
    QR_EXPIRED,
    SCAN_HINT,
    LoginOptions,
    LoginState,
)
from polpo.channels.whatsapp.media import Downloads
from polpo.channels.whatsapp.outbound import MAX_TEXT, Outbound, OutboundOptions, mint_message_id
from polpo.channels.whatsapp.ownership import Ownership, OwnershipOptions
from polpo.channels.whatsapp.process import EXIT_FATAL, WorkerOptions, WorkerProcess
from polpo.channels.whatsapp.timing import Timing, seconds_text
from polpo.errors import ChannelError, LockHeldError

log = logging.getLogger("polpo.channels.whatsapp")


class Outcome(Enum):
    """How one worker run ended."""

    STOPPED = "stopped"
    TRANSIENT = "transient"
    LOGGED_OUT = "logged_out"
    REPLACED = "replaced"
    FATAL = "fatal"


class WorkerRun:
    """What one worker run told us."""

    def __init__(self, *, login: bool = False) -> None:
        #: the worker runs to link the account (no credentials yet)
        self.login = login
        self.outcome: Outcome | None = None
        self.connected = False
        self.paired = False
        self.qr_count = 0
        #: the login window passed with nobody linking
        self.expired = False
        #: (monotonic) when a silent worker counts as hung; None: it is talking
        self.answer_by: float | None = None
        self.error: p.Error | None = None


class WhatsAppChannel:
    """A linked WhatsApp account, through a supervised neonize worker.

    ``inbound=False`` makes a send-only channel: messages are acknowledged to
    the worker but not handed to the gateway. The option objects say how the
    worker runs (:class:`WorkerOptions`), how long login rounds last
    (:class:`LoginOptions`), how sends are paced (:class:`OutboundOptions`),
    who holds the account (:class:`OwnershipOptions`) and where time comes
    from (:class:`Timing`).
    """

    name = "whatsapp"
    text_format: TextFormat = "whatsapp"
    max_text_length = MAX_TEXT

    def __init__(
        self,
        auth_dir: Path | str,
        *,
        inbound: bool = True,
        worker: WorkerOptions | None = None,
        login: LoginOptions | None = None,
        outbound: OutboundOptions | None = None,
        ownership: OwnershipOptions | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.auth_dir = Path(auth_dir)
        self.inbound = inbound
        self.worker_options = worker or WorkerOptions()
        self.login_options = login or LoginOptions()
        self.timing = timing or Timing()
        self.ownership = Ownership(self.auth_dir, ownership or OwnershipOptions(), self.timing)
        self.outbound = Outbound(
            outbound or OutboundOptions(),
            self.timing,
            write=self._write,
            ready=self._require_connected,
            connected=lambda: self._state in ("connected", "degraded"),
        )
        self.login = LoginState()
        self.downloads = Downloads(write=self._write, timeout=self.outbound.options.send_timeout)

        self._listener: ChannelListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._proc: WorkerProcess | None = None
        self._stopping = False
        self._connected_since: float | None = None
        #: why the last worker run ended (shown while reconnecting)
        self._failure = "disconnected"

        self._state = "stopped"
        self._detail: str | None = None
        self._account: str | None = None
        self.restarts = 0
        #: every worker pid this channel started (tests check they are all gone)
        self.worker_pids: list[int] = []

    @property
    def lease_name(self) -> str:
        return self.ownership.lease_name

    def new_message_id(self) -> str:
        """An id for an outbound part, in WhatsApp's format (the outbox stores it before
        sending; a part sent again with it is not sent twice: see :mod:`.ledger`)."""
        return mint_message_id(
            self._account, now=self.timing.clock.now(), random_bytes=os.urandom(16)
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, listener: ChannelListener) -> None:
        if self._task is not None:
            return
        self._listener = listener
        self._stopping = False
        self.login.reset()  # a new start shows new QR codes when not linked
        await self._set_state("starting")
        self._task = asyncio.create_task(self._supervise(), name="whatsapp-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.running:
            await proc.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.outbound.stop_typing()
        self.outbound.fail_pending("the WhatsApp channel stopped")
        await self.ownership.release()
        if self._state not in ("logged_out", "replaced", "error"):
            await self._set_state("stopped")

    def status(self) -> ChannelStatus:
        extra: dict[str, Any] = {"inbound": self.inbound, "restarts": self.restarts}
        extra.update(self.login.status_extra())
        if self._proc is not None and self._proc.running:
            extra["workerPid"] = self._proc.pid
        other = self.ownership.other
        if other is not None:
            extra["leaseHolder"] = other.holder
            extra["leaseExpiresAt"] = other.expires_at
        return ChannelStatus(
            channel=self.name,
            state=self._state,
            detail=self._detail,
            account=self._account,
            extra=extra,
        )

    def request_login(self) -> bool:
        """Ask for QR codes: the account is not linked and none are shown (never
        asked yet, or they ran out). The dashboard calls this.

        Returns whether a login round was asked for."""
        if self._task is None:
            return False
        return self.login.request()

    # -- supervision -------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = Backoff(rng=self.timing.rng)
        asked = False  # the owner asked to link (the dashboard, the API)
        while not self._stopping:
            account = await asyncio.to_thread(linked_account, self.auth_dir)
            if account is None and not asked and self.login.mode is None:
                # Not linked, and nobody asked yet: no worker, no QR codes, no
                # warnings while offline (issue 11) — until someone asks.
                self.login.idle()
                self.ownership.lock.release()
                await self._set_state("waiting_for_login", NOT_LINKED)
            if account is None and self.login.waiting:
                # Wait for someone to ask for codes (the dashboard), checking for
                # credentials made by `polpo whatsapp login` meanwhile.
                self.ownership.lock.release()
                if await self.login.wait_for_request(
                    self.login_options.poll_seconds, self.timing.sleep
                ):
                    self.login.reset()
                    asked = True
                continue
            if account is not None:
                self._account = account.phone
                self.login.mode = None
            if not await self._take_lease(backoff):
                continue
            if not await self._take_lock():
                continue
            if account is None:
                outcome, run = await self._login_round(backoff)
                if outcome is None:
                    continue
            else:
                if self._state == "disconnected":
                    # Retrying: stay "disconnected" (one alert per outage, not one per attempt).
                    self._detail = f"{self._failure}; reconnecting"
                else:
                    await self._set_state("connecting")
                outcome, run = await self._run_worker()
            if self._stopping:
                return
            if self.ownership.lost:
                # Another process took the lease: it runs WhatsApp now; no fight.
                self.ownership.lock.release()
                await self.ownership.drop_lease()
                continue
            if await self._ended_for_good(outcome):
                return
            if run.connected:
                backoff.reset()
            self.restarts += 1
            delay = backoff.next_delay()
            why = self._detail or "the WhatsApp worker exited"
            self._failure = why
            await self._set_state("disconnected", f"{why}; retrying in {seconds_text(delay)} s")
            await self.timing.sleep(delay)

    async def _ended_for_good(self, outcome: Outcome) -> bool:
        """Handle the outcomes after which the channel does not restart the worker."""
        if outcome == Outcome.LOGGED_OUT:
            wipe_credentials(self.auth_dir)
            self.ownership.lock.release()
            await self._set_state("logged_out", f"WhatsApp logged this device out: {LOGIN_HINT}")
            return True
        if outcome == Outcome.REPLACED:
            self.ownership.lock.release()
            await self._set_state(
                "replaced",
                "another WhatsApp Web client connected with this account; Polpo "
                "stopped rather than fight. Restart polpo serve to take it back",
            )
            return True
        if outcome == Outcome.FATAL:
            self.ownership.lock.release()
            await self._set_state("error", self._detail or "the WhatsApp worker failed")
            return True
        return False

    async def _take_lease(self, backoff: Backoff) -> bool:
        """Hold the database lease; when another process does, say who and wait (backoff)."""
        refused = await self.ownership.take_lease(self._on_lease_lost)
        if refused is None:
            return True
        # No worker runs without the lease: leave the credentials to whoever has it
        # (on this machine, the file lock would otherwise keep the holder out).
        self.ownership.lock.release()
        delay = backoff.next_delay()
        await self._set_state("error", f"{refused.why}; retrying in {seconds_text(delay)} s")
        await self.timing.sleep(delay)
        return False

    async def _on_lease_lost(self) -> None:
        proc = self._proc
        if proc is not None and proc.running:
            await proc.stop()

    async def _take_lock(self) -> bool:
        """Hold the account; when another process does, say who and wait ``poll_seconds``."""
        try:
            self.ownership.lock.acquire()
        except LockHeldError as e:
            if "(polpo whatsapp login)" in e.message:
                # Being linked right now: ours as soon as the login ends.
                self.login.qr = self.login.qr_expires_at = None
                await self._set_state("waiting_for_login", e.message)
            else:
                await self._set_state("error", e.message)
            await self.timing.sleep(self.login_options.poll_seconds)
            return False
        return True

    async def _login_round(self, backoff: Backoff) -> tuple[Outcome | None, WorkerRun]:
        """Run the worker in login mode (not linked yet): QR codes until a phone
        scans one or they run out. Returns the outcome to handle as a normal run
        once the worker connected; None when the loop should just go round."""
        if self._state != "waiting_for_login":
            await self._set_state("waiting_for_login", "asking WhatsApp for a QR code to link")
        outcome, run = await self._run_worker(login=True)
        if self._stopping or run.connected:
            return outcome, run
        self.login.clear_codes()
        if run.paired:
            # Linked: WhatsApp drops the connection once and expects the device back.
            backoff.reset()
            await self._set_state(
                "waiting_for_login", f"linked to +{self._account}; connecting", force=True
            )
            return None, run
        if outcome == Outcome.FATAL:
            return outcome, run
        if run.qr_count or run.expired or outcome == Outcome.LOGGED_OUT:
            # Nobody scanned in time: no more codes until someone asks (no endless QR churn).
            backoff.reset()
            self.login.expire()
            self.ownership.lock.release()
            await self._set_state("waiting_for_login", QR_EXPIRED, force=True)
            return None, run
        # No code at all (no network, a crash): try again with backoff.
        self.restarts += 1
        delay = backoff.next_delay()
        why = self._detail or "the WhatsApp worker exited"
        self.ownership.lock.release()
        await self._set_state(
            "waiting_for_login",
            f"cannot get a QR code: {why}; retrying in {seconds_text(delay)} s",
            force=True,
        )
        await self.timing.sleep(delay)
        return None, run

    async def _login_watchdog(self, proc: WorkerProcess, run: WorkerRun) -> None:
        """Stop a login-mode worker nobody linked within the login window."""
        window = self.login_options.window
        await self.timing.sleep(window)
        if not (run.paired or run.connected) and proc.running:
            run.expired = True
            log.info("whatsapp: no phone linked within %.0f s; stopping the QR codes", window)
            await proc.stop()

    async def _run_worker(self, *, login: bool = False) -> tuple[Outcome, WorkerRun]:
        """Run one worker to its end: (outcome, what the run told us)."""
        try:
            proc = await WorkerProcess.spawn(
                self.auth_dir, self.worker_options, inbound=self.inbound
            )
        except OSError as e:
            self._detail = f"cannot start the WhatsApp worker ({e})"
            return Outcome.TRANSIENT, WorkerRun(login=login)
        self._proc = proc
        self.worker_pids.append(proc.pid)
        inbox: asyncio.Queue[InboundMessage | None] = asyncio.Queue()
        deliver_task = asyncio.create_task(self._deliver(inbox, proc), name="whatsapp-deliver")
        run = WorkerRun(login=login)
        watchdog = (
            asyncio.create_task(self._login_watchdog(proc, run), name="whatsapp-login-watchdog")
            if login
            else None
        )
        connect_timeout = self.worker_options.connect_timeout
        try:
            await proc.write(p.Connect())
            run.answer_by = time.monotonic() + connect_timeout
            while True:
                # Until the worker says anything about the connection (or, once a
                # phone linked, until it connects), a silent worker is a hung
                # one: killed after connect_timeout, then started again.
                by = run.answer_by
                wait = None if by is None else max(0.0, by - time.monotonic())
                try:
                    event = await proc.next_event(wait)
                except TimeoutError:
                    self._detail = (
                        f"no answer from the WhatsApp worker within {connect_timeout:g} s"
                        if not run.paired
                        else f"linked, but not connected within {connect_timeout:g} s"
                    )
                    run.error = p.Error(message=self._detail)
                    log.warning("whatsapp: %s; killing it (pid %s)", self._detail, proc.pid)
                    proc.kill()
                    break
                if event is None:
                    break
                await self._on_event(event, run, inbox)
        finally:
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await inbox.put(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(deliver_task), 5)
            deliver_task.cancel()
            code = await proc.wait()
            await asyncio.gather(deliver_task, return_exceptions=True)
            self._proc = None
            self._connected_since = None
            self.outbound.fail_pending("the WhatsApp worker exited")
            self.downloads.fail_pending("the WhatsApp worker exited")
        if run.outcome is not None:
            return run.outcome, run
        if self._stopping:
            return Outcome.STOPPED, run
        if code == EXIT_FATAL:
            return Outcome.FATAL, run
        if run.error is None:
            tail = " | ".join(list(proc.stderr_tail)[-3:])
            self._detail = f"the WhatsApp worker exited with code {code}" + (
                f": {tail}" if tail else ""
            )
        return Outcome.TRANSIENT, run

    async def _on_event(
        self, event: p.Event, run: WorkerRun, inbox: asyncio.Queue[InboundMessage | None]
    ) -> None:
        if isinstance(event, p.Connected | p.Qr | p.PairCode | p.LoggedOut | p.Replaced | p.Error):
            run.answer_by = None  # the worker is alive and talking
        if isinstance(event, p.MessageReceived):
            await inbox.put(event.inbound())
        elif isinstance(event, p.Sent):
            self.outbound.on_sent(event)
        elif isinstance(event, p.Downloaded):
            self.downloads.on_downloaded(event)
        elif isinstance(event, p.Connected):
            run.connected = True
            self._connected_since = self.timing.clock.now()
            self._account = event.phone or self._account
            self.login.done()
            await self._set_state("connected")
        elif isinstance(event, p.Disconnected):
            self._connected_since = None
            if run.login and not run.connected:
                log.info("whatsapp: while linking: %s", event.reason)
                return
            await self._set_state("disconnected", event.reason or "connection lost; reconnecting")
        elif isinstance(event, p.Degraded):
            if self._state in ("connected", "degraded"):
                await self._set_state("degraded", event.reason or "WhatsApp is slow to answer")
        elif isinstance(event, p.Restored):
            if self._state == "degraded":
                await self._set_state("connected")
        elif isinstance(event, p.LoggedOut):
            run.outcome = Outcome.LOGGED_OUT
        elif isinstance(event, p.Replaced):
            run.outcome = Outcome.REPLACED
        elif isinstance(event, p.Error):
            await self._on_error(event, run)
        elif isinstance(event, p.Qr):
            run.qr_count += 1
            self.login.show_qr(event.code, self.timing.clock.now() + event.seconds)
            # A new code is news for the dashboard even though the state is the same.
            await self._set_state(
                "waiting_for_login",
                f"{SCAN_HINT} (this code expires in {event.seconds} s)",
                force=True,
            )
        elif isinstance(event, p.PairCode):
            self.login.show_pair_code(event.code)
            await self._set_state("waiting_for_login", f"enter the code {event.code} on the phone")
        elif isinstance(event, p.Paired):
            # WhatsApp now restarts the connection (the "515" stream error); if
            # whatsmeow's reconnect fails it does not retry and the worker goes
            # quiet: give it connect_timeout to connect, then start it again.
            run.paired = True
            run.answer_by = time.monotonic() + self.worker_options.connect_timeout
            self._account = event.phone or self._account
            self.login.done()
        elif isinstance(event, p.Receipt):
            log.debug("whatsapp: %s receipt for %s", event.kind, event.message_ids)

    async def _on_error(self, event: p.Error, run: WorkerRun) -> None:
        if event.ref:
            if self.downloads.owns(event.ref):
                self.downloads.on_failed(event)
            else:
                self.outbound.on_failed(event)
            return
        if not event.fatal:  # the worker goes on; the connection state is unchanged
            log.info("whatsapp: the worker reported: %s", event.message)
            if run.login and self._state == "waiting_for_login":
                # e.g. scanned by a phone that cannot link devices: say so where the QR is
                await self._set_state("waiting_for_login", event.message, force=True)
            return
        run.error = event
        self._detail = event.message
        if not event.retryable:
            run.outcome = Outcome.FATAL
        log.warning("whatsapp: %s", event.message)

    async def _deliver(
        self, inbox: asyncio.Queue[InboundMessage | None], proc: WorkerProcess
    ) -> None:
        """Hand messages to the gateway in order; ack each one after it is stored."""
        while True:
            message = await inbox.get()
            if message is None:
                return
            if not self.inbound or self.outbound.is_own_echo(message):
                # send-only channel, or our own reply echoed back (self-chat)
                await proc.write(p.Ack(message_id=message.message_id))
                continue
            since = self._connected_since
            if since is None or message.timestamp < since - 1:
                message = replace(message, offline=True)
            listener = self._listener
            if listener is None:
                continue
            try:
                await listener.on_message(message)
            except Exception:
                log.exception(
                    "whatsapp: message %s was not stored; not acknowledged", message.message_id
                )
                continue
            await proc.write(p.Ack(message_id=message.message_id))

    async def _write(self, command: p.Command) -> bool:
        proc = self._proc
        if proc is None:
            return False
        return await proc.write(command)

    # -- outbound ------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self.outbound.send(message)

    async def typing(self, chat_id: str, on: bool) -> None:
        await self.outbound.typing(chat_id, on)

    async def mark_read(self, message: InboundMessage) -> None:
        await self.outbound.mark_read(message)

    async def fetch_attachment(
        self, message: InboundMessage, directory: Path, *, max_bytes: int
    ) -> Path:
        """Download ``message``'s voice note, picture or file into ``directory``.

        For the gateway, and only for admitted peers. Raises ``ChannelError``:
        not connected (retryable), too big, no longer at hand (the worker
        restarted since), or WhatsApp refused it."""
        self._require_connected()
        return await self.downloads.fetch(message, directory, max_bytes)

    def _require_connected(self) -> None:
        if self._state not in ("connected", "degraded") or self._proc is None:
            detail = f" ({self._detail})" if self._detail else ""
            raise ChannelError(
                f"whatsapp: not connected, state {self._state}{detail}", retryable=True
            )

    async def _set_state(
        self, state: str, detail: str | None = None, *, force: bool = False
    ) -> None:
        """Record the state; tell the listener when the state itself changed
        (a new detail alone, "retrying in 4 s", is only in :meth:`status`),
        or when ``force`` says the news matters anyway (a new QR code)."""
        changed = force or state != self._state
        self._state, self._detail = state, detail
        if state in ("error", "logged_out", "replaced"):
            log.warning("whatsapp: %s: %s", state, detail)
        if changed and self._listener is not None:
            try:
                await self._listener.on_status(self.status())
            except Exception:
                log.exception("whatsapp: the listener failed on a status change")
