"""One-off worker sessions for the CLI: linking (``polpo whatsapp login``) and
unlinking (``polpo whatsapp logout``).

These hold the account lock for their whole run, like ``polpo serve`` does,
so a login never races a running server for the same credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.account import (
    AccountLock,
    LinkedAccount,
    linked_account,
    secure,
    wipe_credentials,
)
from polpo.channels.whatsapp.process import WorkerOptions, WorkerProcess
from polpo.errors import ChannelError, LockHeldError, ValidationError

#: how long ``login`` waits for the phone before giving up
LOGIN_TIMEOUT = 180.0
#: how long, once a phone linked, the worker may take to connect before it is started again
CONNECT_AFTER_LINK = 60.0
#: how long ``logout`` waits to connect before unlinking only locally
LOGOUT_CONNECT_TIMEOUT = 20.0


class LoginError(ChannelError):
    """Linking did not complete (no network, timed out, refused by WhatsApp)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class AlreadyLinkedError(ValidationError):
    """``polpo whatsapp login`` on an account that is already linked, without ``--force``."""


class WorkerSession:
    """A worker process this process talks to directly (no supervisor, no restarts)."""

    def __init__(self, auth_dir: Path, command: Sequence[str] | None = None) -> None:
        self.auth_dir = auth_dir
        self.options = WorkerOptions(command=command)
        self.proc: WorkerProcess | None = None

    @property
    def stderr_tail(self) -> list[str]:
        return list(self.proc.stderr_tail) if self.proc is not None else []

    async def start(self) -> None:
        self.proc = await WorkerProcess.spawn(self.auth_dir, self.options)

    async def send(self, command: p.Command) -> None:
        if self.proc is not None:
            await self.proc.write(command)

    async def next_event(self, within: float) -> p.Event | None:
        """The next event; None when the worker exited. ``TimeoutError`` after ``within`` s."""
        assert self.proc is not None
        return await self.proc.next_event(within)

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.running:
            await proc.stop()
        await proc.wait()


@dataclass
class LoginCallbacks:
    """How ``polpo whatsapp login`` shows progress."""

    on_qr: Callable[[str, int], None]
    on_pair_code: Callable[[str], None]
    on_paired: Callable[[str], None]
    #: called about once a second while waiting, with the seconds left on the current code
    on_tick: Callable[[int], None] = lambda _left: None
    #: something the user should know and can fix without starting over (one line)
    on_notice: Callable[[str], None] = lambda _line: None


async def login(
    auth_dir: Path,
    *,
    phone: str | None = None,
    force: bool = False,
    give_up_after: float = LOGIN_TIMEOUT,
    callbacks: LoginCallbacks,
    worker_command: Sequence[str] | None = None,
    connect_after_link: float = CONNECT_AFTER_LINK,
    monotonic: Callable[[], float] = time.monotonic,
) -> LinkedAccount:
    """Link this device to a WhatsApp account; returns the linked account.

    Raises :class:`AlreadyLinkedError` when already linked (without ``force``),
    :class:`~polpo.errors.LockHeldError` when another process holds the
    account, :class:`LoginError` when linking fails or times out.
    """
    existing = linked_account(auth_dir)
    if existing is not None and not force:
        raise AlreadyLinkedError(
            f"WhatsApp is already linked to +{existing.phone}; "
            "use `polpo whatsapp login --force` to link again (the current link is removed)"
        )
    lock = AccountLock(auth_dir, "polpo whatsapp login")
    try:
        lock.acquire()
    except LockHeldError as e:
        if "(polpo serve)" not in e.message:
            raise
        # serve shows the QR code itself: say where, rather than only "stop it"
        raise LockHeldError(
            f"{e.message}. polpo serve links the account from its dashboard: open it and "
            "scan the QR code shown under Channels, or stop polpo serve and run this again"
        ) from None
    try:
        if existing is not None:
            wipe_credentials(auth_dir)
        secure(auth_dir)
        return await _link(
            auth_dir, phone, give_up_after, callbacks, worker_command, connect_after_link, monotonic
        )
    finally:
        lock.release()
        secure(auth_dir)


async def _link(
    auth_dir: Path,
    phone: str | None,
    give_up_after: float,
    cb: LoginCallbacks,
    worker_command: Sequence[str] | None,
    connect_after_link: float,
    monotonic: Callable[[], float],
) -> LinkedAccount:
    deadline = monotonic() + give_up_after
    paired_phone: str | None = None
    code_expires: float | None = None
    restarts = 0
    while True:
        session = WorkerSession(auth_dir, worker_command)
        await session.start()
        try:
            await session.send(p.Connect(phone=phone if paired_phone is None else None))
            if paired_phone is not None:
                deadline = monotonic() + connect_after_link
            while True:
                left = deadline - monotonic()
                if left <= 0:
                    if paired_phone is not None:
                        break  # linked, but the worker went quiet: start it again
                    raise LoginError(
                        f"gave up: no phone linked within {give_up_after:g} s; "
                        "run `polpo whatsapp login` again when your phone is at hand"
                    )
                try:
                    event = await session.next_event(min(1.0, left))
                except TimeoutError:
                    if code_expires is not None:
                        cb.on_tick(max(0, round(code_expires - monotonic())))
                    continue
                if event is None:
                    break  # the worker exited
                if isinstance(event, p.Qr):
                    code_expires = monotonic() + event.seconds
                    cb.on_qr(event.code, event.seconds)
                elif isinstance(event, p.PairCode):
                    code_expires = None
                    cb.on_pair_code(event.code)
                elif isinstance(event, p.Paired):
                    paired_phone = event.phone
                    code_expires = None
                    cb.on_paired(event.phone)
                    # WhatsApp restarts the connection now; whatsmeow does not retry
                    # a failed restart, so a quiet worker is started again.
                    deadline = monotonic() + connect_after_link
                elif isinstance(event, p.Connected):
                    account = linked_account(auth_dir)
                    return account or LinkedAccount(
                        phone=event.phone, jid=event.jid, lid=event.lid, push_name=event.push_name
                    )
                elif isinstance(event, p.LoggedOut):
                    raise LoginError(f"WhatsApp refused the link: {event.reason}")
                elif isinstance(event, p.Error) and event.fatal:
                    if paired_phone is None:
                        raise LoginError(_login_failure(event))
                    break  # linked: the restart WhatsApp asks for; start again
                elif isinstance(event, p.Error) and event.code == "pair_failed":
                    raise LoginError(event.message)
                elif isinstance(event, p.Error) and event.code == "scanned_without_multidevice":
                    cb.on_notice(event.message)
        finally:
            await session.close()
        # The worker ended. Before linking that is a failure; right after
        # linking WhatsApp restarts the connection once: start again.
        tail = f": {session.stderr_tail[-1]}" if session.stderr_tail else ""
        if paired_phone is None:
            raise LoginError(f"the WhatsApp worker stopped before linking{tail}")
        if restarts >= 3:
            raise LoginError(
                f"linked to +{paired_phone}, but could not connect afterwards{tail}; "
                "check with `polpo whatsapp status`"
            )
        restarts += 1


def _login_failure(event: p.Error) -> str:
    if event.code == "connect_failed":
        return f"{event.message}; check the network connection and run `polpo whatsapp login` again"
    if event.code == "qr_timeout":
        return f"{event.message}; run `polpo whatsapp login` again when your phone is at hand"
    if event.code == "client_outdated":
        return event.message
    return f"WhatsApp refused the connection: {event.message}"


@dataclass(frozen=True)
class LogoutResult:
    account: LinkedAccount | None
    #: the device was unlinked on WhatsApp's side (else only locally)
    remote: bool
    #: why the remote unlink did not happen
    why_not: str | None
    removed: list[Path]


async def logout(
    auth_dir: Path,
    *,
    connect_timeout: float = LOGOUT_CONNECT_TIMEOUT,
    worker_command: Sequence[str] | None = None,
) -> LogoutResult:
    """Unlink on WhatsApp's side when it can connect; always delete the local credentials."""
    account = linked_account(auth_dir)
    lock = AccountLock(auth_dir, "polpo whatsapp logout")
    lock.acquire()
    try:
        remote, why_not = False, None
        if account is not None:
            remote, why_not = await _remote_logout(auth_dir, connect_timeout, worker_command)
        removed = wipe_credentials(auth_dir)
        return LogoutResult(account=account, remote=remote, why_not=why_not, removed=removed)
    finally:
        lock.release()


async def _remote_logout(
    auth_dir: Path, connect_timeout: float, worker_command: Sequence[str] | None
) -> tuple[bool, str | None]:
    session = WorkerSession(auth_dir, worker_command)
    await session.start()
    deadline = time.monotonic() + connect_timeout
    try:
        await session.send(p.Connect())
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, f"could not connect to WhatsApp within {connect_timeout:.0f} s"
            try:
                event = await session.next_event(left)
            except TimeoutError:
                continue
            if event is None:
                return False, "the WhatsApp worker stopped"
            if isinstance(event, p.Connected):
                await session.send(p.Logout(ref="logout"))
                deadline = time.monotonic() + connect_timeout
            elif isinstance(event, p.LoggedOut):
                return True, None
            elif isinstance(event, p.Error) and (event.fatal or event.ref == "logout"):
                return False, event.message
            elif isinstance(event, p.Qr):
                return False, "WhatsApp no longer accepts these credentials"
    finally:
        await session.close()


@dataclass(frozen=True)
class LiveCheck:
    connected: bool
    detail: str


async def live_check(
    auth_dir: Path,
    *,
    within: float = 15.0,
    worker_command: Sequence[str] | None = None,
) -> LiveCheck:
    """Connect once with the stored credentials and disconnect (``polpo whatsapp status``).

    Takes the account lock like any other holder: raises
    :class:`~polpo.errors.LockHeldError` when another process holds it.
    """
    lock = AccountLock(auth_dir, "polpo whatsapp status")
    lock.acquire()
    session = WorkerSession(auth_dir, worker_command)
    try:
        await session.start()
        await session.send(p.Connect())
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await session.next_event(left)
            except TimeoutError:
                break
            if event is None:
                return LiveCheck(False, "the WhatsApp worker stopped")
            if isinstance(event, p.Connected):
                return LiveCheck(True, f"connected to WhatsApp as +{event.phone}")
            if isinstance(event, p.LoggedOut):
                return LiveCheck(
                    False, f"WhatsApp no longer accepts these credentials ({event.reason})"
                )
            if isinstance(event, p.Qr):
                return LiveCheck(False, "WhatsApp asks to link again")
            if isinstance(event, p.Error) and event.fatal:
                return LiveCheck(False, f"cannot connect: {event.message}")
        return LiveCheck(False, f"no connection within {within:.0f} s")
    finally:
        await session.close()
        lock.release()
