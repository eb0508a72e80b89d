"""The linked account on disk: credentials, their permissions, and the lock.

neonize (whatsmeow) keeps the linked device in an SQLite file,
``<authDir>/neonize.db``; reading its ``whatsmeow_device`` table tells
whether an account is linked and which, without starting the engine (the
CLI's ``status`` and ``login`` use this). Only one process may hold the
account: a second connection would make WhatsApp drop the first ("replaced"),
so :class:`AccountLock` (an ``fcntl`` lock on ``<authDir>/polpo.lock``,
released by the kernel if the holder dies) keeps a second ``polpo serve`` or
``polpo whatsapp login`` out, and says which process holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from polpo.errors import LockHeldError

DB_NAME = "neonize.db"
LOCK_NAME = "polpo.lock"


@dataclass(frozen=True)
class LinkedAccount:
    """What the credentials say about the linked account."""

    phone: str
    jid: str
    lid: str | None = None
    push_name: str | None = None
    platform: str | None = None


def credentials_path(auth_dir: Path) -> Path:
    return auth_dir / DB_NAME


def linked_account(auth_dir: Path) -> LinkedAccount | None:
    """The account the stored credentials belong to, or None when nothing is linked.

    Read-only: never creates the file, never waits long on a busy database.
    """
    db = credentials_path(auth_dir)
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT jid, lid, push_name, platform FROM whatsmeow_device LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if row is None or not row[0]:
        return None
    jid = str(row[0])
    phone = jid.split("@", 1)[0].split(":", 1)[0].split(".", 1)[0]
    lid = str(row[1]).split("@", 1)[0].split(":", 1)[0] if row[1] else None
    return LinkedAccount(
        phone=phone, jid=jid, lid=lid or None, push_name=row[2] or None, platform=row[3] or None
    )


def wipe_credentials(auth_dir: Path) -> list[Path]:
    """Delete the local credentials (the database and its journal files); returns what went."""
    removed: list[Path] = []
    if not auth_dir.is_dir():
        return removed
    for path in sorted(auth_dir.iterdir()):
        if path.name.startswith(DB_NAME) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def secure(auth_dir: Path) -> None:
    """Credentials: directory 0700, files 0600 (created if missing)."""
    auth_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        auth_dir.chmod(0o700)
    for path in auth_dir.iterdir():
        if path.is_file():
            with contextlib.suppress(OSError):
                path.chmod(0o600)


class AccountLock:
    """An exclusive, non-blocking ``fcntl`` lock on ``<authDir>/polpo.lock``.

    The file holds the holder's pid and what it is (``polpo serve``, ``polpo
    whatsapp login``) so a second process can say who is in the way.
    """

    def __init__(self, auth_dir: Path, holder: str = "polpo") -> None:
        self.path = auth_dir / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockHeldError` naming the holder."""
        if self._fd is not None:
            return
        secure(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            who = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(
                f"the WhatsApp account in {self.path.parent} is in use by {who}; "
                "stop it first (only one process may hold a WhatsApp connection)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.holder}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> AccountLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(auth_dir: Path) -> str | None:
    """Who holds the account lock right now (``"pid 123 (polpo serve)"``), or None."""
    path = auth_dir / LOCK_NAME
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, what = text.partition(" ")
    if pid.isdigit():
        return f"pid {pid} ({what})" if what else f"pid {pid}"
    return "another process"
