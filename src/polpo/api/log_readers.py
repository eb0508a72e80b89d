"""Who else can read the file ``polpo serve`` logs to (a sign-in link must not go there).

The dashboard link serve prints at start signs a browser in until it is
used. Found by the audit: with serve's output written into the project
(``nohup polpo serve &`` writes ``nohup.out`` there), an agent whose commands
have network access read it, signed in and could approve its own work; a
log file other users may read hands it to them. A terminal, a pipe or
journald cannot be judged from here and are trusted as the owner's.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from polpo.sandbox_paths import POLPO_DIR, within


@dataclass(frozen=True)
class LogReaders:
    """A log file that others can read: where it is, and who."""

    path: str
    who: str


def log_readers(logger: logging.Logger, root: Path) -> LogReaders | None:
    """The first file ``logger``'s records reach that agents' commands (a file of the
    project ``root``, outside ``.polpo/``) or other users may read; None if none."""
    project = os.path.realpath(root)
    for fd, fallback in _files(logger):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        path = _path_of(fd) or fallback
        if path is None:
            continue
        real = os.path.realpath(path)
        if within(real, project) and not within(real, os.path.join(project, POLPO_DIR)):
            return LogReaders(path, "agents' commands")
        if st.st_mode & stat.S_IROTH and _reachable_by_others(real):
            return LogReaders(path, "other users")
    return None


def _files(logger: logging.Logger) -> Iterator[tuple[int, str | None]]:
    """File descriptors (and file names, when known) of the handlers a record reaches."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            stream = getattr(handler, "stream", None)
            try:
                fd = stream.fileno() if stream is not None else -1
            except (AttributeError, OSError, ValueError):
                continue
            if fd >= 0:
                yield fd, getattr(handler, "baseFilename", None)
        current = current.parent if current.propagate else None


def _path_of(fd: int) -> str | None:
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")  # Linux
    except OSError:
        return None
    return path if path.startswith("/") else None


def _reachable_by_others(path: str) -> bool:
    """Every folder above ``path`` lets other users through (``o+x``)."""
    folder = os.path.dirname(path)
    while True:
        try:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(folder)
        if parent == folder:
            return True
        folder = parent
