"""Polpo's own files are the owner's alone, whatever the umask.

``.polpo/`` holds the config, the database (every chat, task and peer), the
WhatsApp credentials and the dashboard's session token: it is created (and
kept) ``0700``. The SQLite database is created ``0600`` before SQLite opens
it, and SQLite gives its ``-wal`` and ``-shm`` files the database's own
mode, so they are ``0600`` too; files left wider by an older Polpo are
narrowed when the database is opened.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The name of Polpo's folder in a project (also ``polpo.config.CONFIG_DIR``).
POLPO_DIR = ".polpo"
DIR_MODE = 0o700
FILE_MODE = 0o600
#: The files SQLite keeps beside a database.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents, as usual) and make it ``0700``."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _narrow(path, DIR_MODE)


def _narrow(path: Path, mode: int) -> None:
    """Best effort: a file of someone else's is left to its owner."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        os.chmod(path, mode)


def private_sqlite_file(db: Path) -> None:
    """Create the database file ``0600`` if missing; narrow it and its side files if wider.

    Its folder is created ``0700`` when Polpo creates it, and narrowed when
    it is ``.polpo/``; a folder of the owner's choosing is left as it is.
    """
    folder = db.parent
    if folder.name == POLPO_DIR or not folder.exists():
        private_dir(folder)
    try:
        fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        _narrow(db, FILE_MODE)
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have taken bits off; never added any
        finally:
            os.close(fd)
    for suffix in SQLITE_SIDE_FILES:
        _narrow(db.with_name(db.name + suffix), FILE_MODE)
