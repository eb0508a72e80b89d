"""``WhatsAppChannel``: supervises the neonize worker process and speaks its protocol.

The worker (``python -m polpo.channels.whatsapp.worker``) does the WhatsApp
work; this side implements :class:`polpo.channels.base.Channel`:

- it holds the account lock (one process per account) while a worker runs
  and, given a ``store``, the database lease ``whatsapp:<auth dir>``
  (:mod:`polpo.store.leases`), renewed every ``lease_renew`` seconds: while
  another process (maybe on another machine) holds it the channel runs no
  worker, says who holds it and until when (state ``error``) and retries
  with backoff; a renewal that finds the lease taken stops the worker;
- it restarts a worker that exits on a transient failure (no network, a
  crash) with exponential backoff and jitter, 1 s → 60 s, for ever, and
  resets the backoff once a worker connected;
- while the account is not linked it runs the worker in login mode: the
  current QR code is in ``status().extra["qr"]`` (the API renders it at
  ``/api/v1/channels/whatsapp/qr.svg``, the dashboard shows it) and, once a
  phone scanned it, the channel goes on to ``connected``; when the codes run
  out (``login_window``, or the worker gives up) it stays
  ``waiting_for_login`` until :meth:`request_login` (the dashboard) asks for
  new ones;
- it stops for good when WhatsApp logs the device out (status
  ``logged_out``: run ``polpo whatsapp login``) or another client replaces
  this one (status ``replaced``: no fight);
- it asks a worker to ``stop`` and kills it when it has not exited after
  ``stop_timeout`` (10 s);
- every inbound message is handed to ``listener.on_message`` and only then
  acknowledged to the worker (which holds WhatsApp's receipt until then);
- :meth:`send` raises ``ChannelError(retryable=True)`` while disconnected:
  the gateway's outbox keeps the row and sends it once :meth:`status` says
  ``connected`` again (reported through ``listener.on_status``); sends to one
  chat are paced ``pace_seconds`` apart.

Everything that waits on purpose (backoff, pacing, typing refresh, the
credentials poll) goes through the injected ``sleep``/``clock``/``rng``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import shlex
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
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
from polpo.channels.whatsapp.account import AccountLock, linked_account, wipe_credentials
from polpo.clock import SYSTEM_CLOCK, Clock
from polpo.errors import ChannelError, LockHeldError
from polpo.store import leases
from polpo.store.engine import PROCESS_ID, Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: a command line that replaces the real worker (tests, another engine); --auth-dir is appended
WORKER_ENV = "POLPO_WHATSAPP_WORKER"
MAX_TEXT = 4000
LOGIN_HINT = "run `polpo whatsapp login` to link WhatsApp"
SCAN_HINT = (
    "scan this QR code with WhatsApp on your phone: Settings → Linked devices → Link a device"
)
QR_EXPIRED = (
    "QR code expired — reload the dashboard (or press “New QR code”) to get a new one, "
    "or run `polpo whatsapp login`"
)
#: how long one login round shows QR codes (whatsmeow issues ~160 s of them)
LOGIN_WINDOW = 180.0
#: exit code of a worker that must not be restarted (banned, outdated client)
EXIT_FATAL = 4
_SENT_MEMORY = 5000


def default_worker_command() -> list[str]:
    override = os.environ.get(WORKER_ENV, "").strip()
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "polpo.channels.whatsapp.worker"]


class _Outcome:
    STOPPED = "stopped"
    TRANSIENT = "transient"
    LOGGED_OUT = "logged_out"
    REPLACED = "replaced"
    FATAL = "fatal"


class WhatsAppChannel:
    """A linked WhatsApp account, through a supervised neonize worker."""

    name = "whatsapp"
    text_format: TextFormat = "whatsapp"
    max_text_length = MAX_TEXT

    def __init__(
        self,
        auth_dir: Path | str,
        *,
        inbound: bool = True,
        bot_tag: bool = False,
        worker_command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        stop_timeout: float = 10.0,
        connect_timeout: float = 120.0,
        send_timeout: float = 60.0,
        pace_seconds: float = 1.0,
        login_poll_seconds: float = 5.0,
        login_window: float = LOGIN_WINDOW,
        typing_interval: float = 20.0,
        typing_max_seconds: float = 300.0,
        holder: str = "polpo serve",
        store: Store | None = None,
        lease_ttl: float = 60.0,
        lease_renew: float = 20.0,
    ) -> None:
        self.auth_dir = Path(auth_dir)
        self._inbound = inbound
        self._bot_tag = bot_tag
        self._command = list(worker_command) if worker_command else default_worker_command()
        self._env = dict(os.environ if env is None else env)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._stop_timeout = stop_timeout
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._pace = pace_seconds
        self._login_poll = login_poll_seconds
        self._login_window = login_window
        self._typing_interval = typing_interval
        self._typing_max = typing_max_seconds
        self._lock = AccountLock(self.auth_dir, holder)
        #: the database lease (None: the file lock alone)
        self._store = store
        self.lease_name = f"whatsapp:{self.auth_dir.resolve()}"
        self.lease_holder = f"{PROCESS_ID} ({holder})"
        self._lease_ttl = lease_ttl
        self._lease_renew = lease_renew
        self._lease_held = False
        self._lease_lost = False
        self._renewer: asyncio.Task[None] | None = None
        self._lease_other: leases.Lease | None = None

        self._listener: ChannelListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._write_lock = asyncio.Lock()
        self._stopping = False
        self._pending: dict[str, asyncio.Future[p.Sent]] = {}
        self._refs = itertools.count(1)
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._chat_locks: dict[str, asyncio.Lock] = {}
        self._last_sent: dict[str, float] = {}
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._connected_since: float | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        #: why the last worker run ended (shown while reconnecting)
        self._failure = "disconnected"

        self._state = "stopped"
        self._detail: str | None = None
        self._account: str | None = None
        self._qr: str | None = None
        self._pair_code: str | None = None
        self._qr_expires_at: float | None = None
        #: login mode: "qr" (codes shown), "expired" (they ran out; waiting for a request)
        self._login: str | None = None
        self._login_wanted = asyncio.Event()
        self.restarts = 0
        #: every worker pid this channel started (tests check they are all gone)
        self.worker_pids: list[int] = []

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, listener: ChannelListener) -> None:
        if self._task is not None:
            return
        self._listener = listener
        self._stopping = False
        self._login = None  # a new start shows new QR codes when not linked
        self._login_wanted.clear()
        await self._set_state("starting")
        self._task = asyncio.create_task(self._supervise(), name="whatsapp-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            await self._stop_worker(proc)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        typing, self._typing = list(self._typing.values()), {}
        for t in typing:
            t.cancel()
        await asyncio.gather(*typing, return_exceptions=True)
        self._fail_pending("the WhatsApp channel stopped")
        self._lock.release()
        await self._release_lease()
        if self._state not in ("logged_out", "replaced", "error"):
            await self._set_state("stopped")

    async def _stop_worker(self, proc: asyncio.subprocess.Process) -> None:
        """Ask the worker to stop; kill it if it has not exited within ``stop_timeout``."""
        await self._write(p.Stop(), proc)
        with contextlib.suppress(Exception):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout)
        except TimeoutError:
            log.warning(
                "whatsapp: the worker (pid %s) did not stop within %.0f s; killing it",
                proc.pid,
                self._stop_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def status(self) -> ChannelStatus:
        extra: dict[str, Any] = {"inbound": self._inbound, "restarts": self.restarts}
        if self._qr is not None:
            extra["qr"] = self._qr
            if self._qr_expires_at is not None:
                extra["qrExpiresAt"] = self._qr_expires_at
        if self._login is not None:
            extra["login"] = self._login
        if self._pair_code is not None:
            extra["pairCode"] = self._pair_code
        if self._proc is not None and self._proc.returncode is None:
            extra["workerPid"] = self._proc.pid
        if self._lease_other is not None:
            extra["leaseHolder"] = self._lease_other.holder
            extra["leaseExpiresAt"] = self._lease_other.expires_at
        return ChannelStatus(
            channel=self.name,
            state=self._state,
            detail=self._detail,
            account=self._account,
            extra=extra,
        )

    # -- supervision -------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = Backoff(rng=self._rng)
        while not self._stopping:
            account = await asyncio.to_thread(linked_account, self.auth_dir)
            if account is None and self._login == "expired":
                # The QR codes ran out: wait for someone to ask for new ones
                # (the dashboard), checking for credentials made by the CLI meanwhile.
                self._lock.release()
                if await self._wait_for_login_request(self._login_poll):
                    self._login = None
                continue
            if account is not None:
                self._account = account.phone
                self._login = None
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
            connected = run.connected
            if self._stopping:
                return
            if self._lease_lost:
                # Another process took the lease: it runs WhatsApp now; no fight.
                self._lock.release()
                await self._drop_lease()
                continue
            if outcome == _Outcome.LOGGED_OUT:
                wipe_credentials(self.auth_dir)
                self._lock.release()
                await self._set_state(
                    "logged_out", f"WhatsApp logged this device out: {LOGIN_HINT}"
                )
                return
            if outcome == _Outcome.REPLACED:
                self._lock.release()
                await self._set_state(
                    "replaced",
                    "another WhatsApp Web client connected with this account; Polpo "
                    "stopped rather than fight. Restart polpo serve to take it back",
                )
                return
            if outcome == _Outcome.FATAL:
                self._lock.release()
                await self._set_state("error", self._detail or "the WhatsApp worker failed")
                return
            if connected:
                backoff.reset()
            self.restarts += 1
            delay = backoff.next_delay()
            why = self._detail or "the WhatsApp worker exited"
            self._failure = why
            await self._set_state("disconnected", f"{why}; retrying in {_seconds(delay)} s")
            await self._sleep(delay)

    async def _take_lease(self, backoff: Backoff) -> bool:
        """Hold the database lease; when another process does, say who and wait (backoff)."""
        if self._store is None or self._lease_held:
            return True
        now = self._clock.now()
        try:
            got = await leases.acquire(
                self._store, self.lease_name, self.lease_holder, now=now, ttl=self._lease_ttl
            )
            other = None if got is not None else await leases.current(self._store, self.lease_name)
        except Exception as e:
            got, other = None, None
            why = f"cannot take the WhatsApp lease in the database ({e})"
        else:
            why = ""
        if got is not None:
            self._lease_held, self._lease_lost, self._lease_other = True, False, None
            self._renewer = asyncio.create_task(self._renew_lease(), name="whatsapp-lease")
            return True
        # No worker runs without the lease: leave the credentials to whoever has it
        # (on this machine, the file lock would otherwise keep the holder out).
        self._lock.release()
        delay = backoff.next_delay()
        if other is not None:
            self._lease_other = other
            until = time.strftime("%H:%M:%S UTC", time.gmtime(other.expires_at))
            why = (
                f"WhatsApp is held by {other.holder} (database lease, until {until} unless renewed)"
            )
        await self._set_state(
            "error",
            f"{why or 'the WhatsApp lease is held elsewhere'}; retrying in {_seconds(delay)} s",
        )
        await self._sleep(delay)
        return False

    async def _renew_lease(self) -> None:
        """Keep the lease; when it was taken by another process, stop the worker."""
        assert self._store is not None
        while True:
            await self._sleep(self._lease_renew)
            try:
                ours = await leases.renew(
                    self._store,
                    self.lease_name,
                    self.lease_holder,
                    now=self._clock.now(),
                    ttl=self._lease_ttl,
                )
            except Exception as e:  # the database is away: keep the worker, try again
                log.warning("whatsapp: cannot renew the lease: %s", e)
                continue
            if ours:
                continue
            log.warning("whatsapp: another process took the WhatsApp lease; stopping the worker")
            self._lease_lost = True
            self._lease_held = False
            proc = self._proc
            if proc is not None and proc.returncode is None:
                await self._stop_worker(proc)
            return

    async def _drop_lease(self) -> None:
        """Stop renewing (the lease is gone or being given back)."""
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._lease_held = False
        self._lease_lost = False

    async def _release_lease(self) -> None:
        held = self._lease_held
        await self._drop_lease()
        if held and self._store is not None:
            try:
                await leases.release(self._store, self.lease_name, self.lease_holder)
            except Exception as e:
                log.warning("whatsapp: cannot release the lease: %s", e)

    async def _take_lock(self) -> bool:
        """Hold the account; when another process does, say who and wait ``login_poll``."""
        try:
            self._lock.acquire()
        except LockHeldError as e:
            if "(polpo whatsapp login)" in e.message:
                # Being linked right now: ours as soon as the login ends.
                self._qr = self._qr_expires_at = None
                await self._set_state("waiting_for_login", e.message)
            else:
                await self._set_state("error", e.message)
            await self._sleep(self._login_poll)
            return False
        return True

    async def _login_round(self, backoff: Backoff) -> tuple[str | None, _WorkerRun]:
        """Run the worker in login mode (not linked yet): QR codes until a phone
        scans one or they run out. Returns the outcome to handle as a normal run
        once the worker connected; None when the loop should just go round."""
        if self._state != "waiting_for_login":
            await self._set_state("waiting_for_login", "asking WhatsApp for a QR code to link")
        outcome, run = await self._run_worker(login=True)
        if self._stopping or run.connected:
            return outcome, run
        self._qr = self._qr_expires_at = self._pair_code = None
        if run.paired:
            # Linked: WhatsApp drops the connection once and expects the device back.
            backoff.reset()
            await self._set_state(
                "waiting_for_login", f"linked to +{self._account}; connecting", force=True
            )
            return None, run
        if outcome == _Outcome.FATAL:
            return outcome, run
        if run.qr_count or run.expired or outcome == _Outcome.LOGGED_OUT:
            # Nobody scanned in time: no more codes until someone asks (no endless QR churn).
            backoff.reset()
            self._login = "expired"
            self._lock.release()
            await self._set_state("waiting_for_login", QR_EXPIRED, force=True)
            return None, run
        # No code at all (no network, a crash): try again with backoff.
        self.restarts += 1
        delay = backoff.next_delay()
        why = self._detail or "the WhatsApp worker exited"
        self._lock.release()
        await self._set_state(
            "waiting_for_login",
            f"cannot get a QR code: {why}; retrying in {_seconds(delay)} s",
            force=True,
        )
        await self._sleep(delay)
        return None, run

    def request_login(self) -> bool:
        """Ask for new QR codes when the last ones ran out (the dashboard calls this).

        Returns whether a new login round was asked for."""
        if self._login != "expired" or self._task is None:
            return False
        self._login_wanted.set()
        return True

    async def _wait_for_login_request(self, seconds: float) -> bool:
        """Wait ``seconds`` (the injected sleep) or until :meth:`request_login`; True if asked."""
        if self._login_wanted.is_set():
            self._login_wanted.clear()
            return True
        asked = asyncio.create_task(self._login_wanted.wait())
        slept = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait({asked, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (asked, slept):
                t.cancel()
            await asyncio.gather(asked, slept, return_exceptions=True)
        if self._login_wanted.is_set():
            self._login_wanted.clear()
            return True
        return False

    async def _login_watchdog(self, proc: asyncio.subprocess.Process, run: _WorkerRun) -> None:
        """Stop a login-mode worker nobody linked within ``login_window``."""
        await self._sleep(self._login_window)
        if not (run.paired or run.connected) and proc.returncode is None:
            run.expired = True
            log.info(
                "whatsapp: no phone linked within %.0f s; stopping the QR codes", self._login_window
            )
            await self._stop_worker(proc)

    async def _run_worker(self, *, login: bool = False) -> tuple[str, _WorkerRun]:
        """Run one worker to its end: (outcome, what the run told us)."""
        command = [*self._command, "--auth-dir", str(self.auth_dir)]
        if self._bot_tag:
            command.append("--bot-tag")
        env = dict(self._env)
        env["PYTHONUNBUFFERED"] = "1"
        if self._bot_tag:
            env.pop("NEONIZE_BOT_TAG", None)
        else:
            env["NEONIZE_BOT_TAG"] = "off"
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=p.MAX_LINE_BYTES,
                start_new_session=True,
            )
        except OSError as e:
            self._detail = f"cannot start the WhatsApp worker ({e})"
            return _Outcome.TRANSIENT, _WorkerRun(login=login)
        self._proc = proc
        self.worker_pids.append(proc.pid)
        self._stderr_tail.clear()
        stderr_task = asyncio.create_task(self._drain_stderr(proc), name="whatsapp-worker-stderr")
        inbox: asyncio.Queue[InboundMessage | None] = asyncio.Queue()
        deliver_task = asyncio.create_task(self._deliver(inbox, proc), name="whatsapp-deliver")
        run = _WorkerRun(login=login)
        watchdog = (
            asyncio.create_task(self._login_watchdog(proc, run), name="whatsapp-login-watchdog")
            if login
            else None
        )
        try:
            await self._write(p.Connect(), proc)
            assert proc.stdout is not None
            connect_by = time.monotonic() + self._connect_timeout
            while True:
                # Until the worker says anything about the connection, a silent
                # worker is a hung one: killed after connect_timeout, then retried.
                wait = None if run.heard else max(0.0, connect_by - time.monotonic())
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), wait)
                except TimeoutError:
                    self._detail = (
                        f"no answer from the WhatsApp worker within {self._connect_timeout:g} s"
                    )
                    run.error = p.Error(message=self._detail)
                    log.warning("whatsapp: %s; killing it (pid %s)", self._detail, proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    break
                except ValueError:  # a line over the limit: skip what is left of it
                    log.warning("whatsapp: an over-long line from the worker was dropped")
                    continue
                if not line:
                    break
                try:
                    event = p.decode_event(line)
                except p.ProtocolError as e:
                    log.warning("whatsapp: worker said something unreadable: %s", e)
                    continue
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
            await asyncio.gather(stderr_task, deliver_task, return_exceptions=True)
            self._proc = None
            self._connected_since = None
            self._fail_pending("the WhatsApp worker exited")
        if run.outcome is not None:
            return run.outcome, run
        if self._stopping:
            return _Outcome.STOPPED, run
        if code == EXIT_FATAL:
            return _Outcome.FATAL, run
        if run.error is None:
            tail = " | ".join(list(self._stderr_tail)[-3:])
            self._detail = f"the WhatsApp worker exited with code {code}" + (
                f": {tail}" if tail else ""
            )
        return _Outcome.TRANSIENT, run

    async def _on_event(
        self, event: p.Event, run: _WorkerRun, inbox: asyncio.Queue[InboundMessage | None]
    ) -> None:
        if isinstance(event, p.Connected | p.Qr | p.PairCode | p.LoggedOut | p.Replaced | p.Error):
            run.heard = True
        if isinstance(event, p.MessageReceived):
            await inbox.put(event.inbound())
        elif isinstance(event, p.Sent):
            future = self._pending.pop(event.ref, None)
            self._remember_sent(event.message_id)
            if future is not None and not future.done():
                future.set_result(event)
        elif isinstance(event, p.Connected):
            run.connected = True
            self._connected_since = self._clock.now()
            self._account = event.phone or self._account
            self._qr = self._qr_expires_at = self._pair_code = self._login = None
            await self._set_state("connected")
        elif isinstance(event, p.Disconnected):
            self._connected_since = None
            if run.login and not run.connected:
                log.info("whatsapp: while linking: %s", event.reason)
                return
            await self._set_state("disconnected", event.reason or "connection lost; reconnecting")
        elif isinstance(event, p.LoggedOut):
            run.outcome = _Outcome.LOGGED_OUT
        elif isinstance(event, p.Replaced):
            run.outcome = _Outcome.REPLACED
        elif isinstance(event, p.Error):
            if event.ref:
                future = self._pending.pop(event.ref, None)
                if future is not None and not future.done():
                    future.set_exception(
                        ChannelError(f"whatsapp: {event.message}", retryable=event.retryable)
                    )
                return
            if not event.fatal:  # the worker goes on; the connection state is unchanged
                log.info("whatsapp: the worker reported: %s", event.message)
                return
            run.error = event
            self._detail = event.message
            if not event.retryable:
                run.outcome = _Outcome.FATAL
            log.warning("whatsapp: %s", event.message)
        elif isinstance(event, p.Qr):
            run.qr_count += 1
            self._qr = event.code
            self._qr_expires_at = self._clock.now() + event.seconds
            self._login = "qr"
            # A new code is news for the dashboard even though the state is the same.
            await self._set_state(
                "waiting_for_login",
                f"{SCAN_HINT} (this code expires in {event.seconds} s)",
                force=True,
            )
        elif isinstance(event, p.PairCode):
            self._pair_code = event.code
            await self._set_state("waiting_for_login", f"enter the code {event.code} on the phone")
        elif isinstance(event, p.Paired):
            run.paired = True
            self._account = event.phone or self._account
            self._qr = self._qr_expires_at = self._pair_code = None
            self._login = None
        elif isinstance(event, p.Receipt):
            log.debug("whatsapp: %s receipt for %s", event.kind, event.message_ids)

    async def _deliver(
        self, inbox: asyncio.Queue[InboundMessage | None], proc: asyncio.subprocess.Process
    ) -> None:
        """Hand messages to the gateway in order; ack each one after it is stored."""
        while True:
            message = await inbox.get()
            if message is None:
                return
            if not self._inbound or (message.is_from_me and message.message_id in self._sent_ids):
                # send-only channel, or our own reply echoed back (self-chat)
                await self._write(p.Ack(message_id=message.message_id), proc)
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
            await self._write(p.Ack(message_id=message.message_id), proc)

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr_tail.append(text)
                log.info("whatsapp worker: %s", text)

    async def _write(
        self, command: p.Command, proc: asyncio.subprocess.Process | None = None
    ) -> bool:
        proc = proc or self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return False
        async with self._write_lock:
            try:
                proc.stdin.write(p.encode(command).encode("utf-8"))
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                return False
        return True

    # -- outbound ------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        chat = to_jid(message.chat_id)
        if not valid_jid(chat):
            raise ChannelError(
                f"whatsapp: {message.chat_id!r} is not a WhatsApp chat", retryable=False
            )
        lock = self._chat_locks.setdefault(chat, asyncio.Lock())
        async with lock:
            self._require_connected()
            last = self._last_sent.get(chat)
            if last is not None and self._pace > 0:
                wait = self._pace - (self._clock.now() - last)
                if wait > 0:
                    await self._sleep(wait)
                self._require_connected()
            ref = f"s{next(self._refs)}"
            future: asyncio.Future[p.Sent] = asyncio.get_running_loop().create_future()
            self._pending[ref] = future
            written = await self._write(
                p.SendText(ref=ref, chat=chat, text=message.text, reply_to=message.reply_to)
            )
            if not written:
                self._pending.pop(ref, None)
                raise ChannelError("whatsapp: not connected (the worker is restarting)")
            try:
                sent = await asyncio.wait_for(future, self._send_timeout)
            except TimeoutError:
                self._pending.pop(ref, None)
                raise ChannelError(
                    f"whatsapp: no answer from WhatsApp within {self._send_timeout:.0f} s"
                ) from None
            self._last_sent[chat] = self._clock.now()
            return SendResult(message_id=sent.message_id)

    def _require_connected(self) -> None:
        if self._state != "connected" or self._proc is None:
            detail = f" ({self._detail})" if self._detail else ""
            raise ChannelError(
                f"whatsapp: not connected, state {self._state}{detail}", retryable=True
            )

    async def typing(self, chat_id: str, on: bool) -> None:
        """ "typing…" in ``chat_id``, refreshed until turned off (WhatsApp drops it after ~25 s)."""
        chat = to_jid(chat_id)
        running = self._typing.pop(chat, None)
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        if on:
            if self._state == "connected":
                self._typing[chat] = asyncio.create_task(
                    self._keep_typing(chat), name=f"whatsapp-typing-{chat}"
                )
        elif self._state == "connected":
            await self._write(p.Typing(chat=chat, on=False))

    async def _keep_typing(self, chat: str) -> None:
        started = self._clock.now()
        while self._clock.now() - started < self._typing_max:
            await self._write(p.Typing(chat=chat, on=True))
            await self._sleep(self._typing_interval)

    async def mark_read(self, message: InboundMessage) -> None:
        """Blue ticks for a message the gateway has processed (only while connected)."""
        if self._state != "connected" or message.kind == "reaction":
            return
        message_id = message.message_id.split(":edit:", 1)[0]
        await self._write(
            p.MarkRead(
                chat=to_jid(message.chat_id),
                sender=peer_jid(message.peer),
                message_ids=[message_id],
                timestamp=message.timestamp,
            )
        )

    # -- helpers ---------------------------------------------------------------------------

    def _remember_sent(self, message_id: str) -> None:
        self._sent_ids[message_id] = None
        while len(self._sent_ids) > _SENT_MEMORY:
            self._sent_ids.popitem(last=False)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelError(f"whatsapp: {why}", retryable=True))

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


class _WorkerRun:
    """What one worker run told us."""

    def __init__(self, *, login: bool = False) -> None:
        #: the worker runs to link the account (no credentials yet)
        self.login = login
        self.outcome: str | None = None
        self.connected = False
        self.paired = False
        self.qr_count = 0
        #: the login window passed with nobody linking
        self.expired = False
        #: the worker said something about the connection (so it is not hung)
        self.heard = False
        self.error: p.Error | None = None


def _seconds(delay: float) -> str:
    """``0.5``, ``1.4``, ``12``: a delay as a person reads it."""
    return f"{delay:.0f}" if delay >= 10 else f"{delay:.1f}".rstrip("0").rstrip(".")


def to_jid(chat_id: str) -> str:
    """A chat id as the worker wants it: a JID (bare numbers are phone chats)."""
    chat = chat_id.strip()
    if chat.startswith("whatsapp:"):
        chat = chat[len("whatsapp:") :]
    if chat.startswith("lid:"):
        return f"{chat[4:]}@lid"
    if "@" not in chat:
        digits = "".join(c for c in chat if c.isdigit())
        return f"{digits}@s.whatsapp.net"
    return chat


_SERVERS = ("s.whatsapp.net", "lid", "g.us", "c.us", "hosted", "hosted.lid")


def valid_jid(jid: str) -> bool:
    """A JID a message can be sent to: ``digits@server`` (groups: ``digits-digits@g.us``)."""
    user, _, server = jid.partition("@")
    if server not in _SERVERS or not user:
        return False
    return user.replace("-", "").isdigit() and user.isascii()


def peer_jid(peer: str) -> str:
    """The JID of a peer's external id (``39123…`` or ``lid:…``)."""
    return to_jid(peer)
