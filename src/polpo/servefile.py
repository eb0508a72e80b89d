"""``.polpo/serve.json``: where the running ``polpo serve`` listens, and the CLI's token.

The HTTP API wants credentials from everyone (see :mod:`polpo.api.auth`), the
CLI on this machine included. ``polpo serve`` makes a random bearer token at
start and writes it here with its real URL (``--port 0`` works) and pid,
readable by the owner only (0600); it removes the file on a clean stop. The
CLI (``polpo dashboard``, ``polpo whatsapp status``) reads it. A file left by
a crashed serve is harmless: its token died with the process, and readers
treat a missing, unreadable or garbled file as "no serve here".

Only the standard library is imported: the CLI reads this on every call.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

SERVE_FILE = "serve.json"


@dataclass(frozen=True)
class ServeFile:
    url: str
    token: str
    pid: int


def serve_file_path(polpo_dir: Path) -> Path:
    return polpo_dir / SERVE_FILE


def write_serve_file(polpo_dir: Path, url: str, token: str) -> Path:
    """Write atomically, created 0600 whatever the umask."""
    path = serve_file_path(polpo_dir)
    tmp = path.with_name(f".{SERVE_FILE}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps({"url": url, "token": token, "pid": os.getpid()}).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read_serve_file(polpo_dir: Path) -> ServeFile | None:
    """The file's contents, or None when it is missing, unreadable or not ours."""
    try:
        data = json.loads(serve_file_path(polpo_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    url, token, pid = data.get("url"), data.get("token"), data.get("pid")
    if not (isinstance(url, str) and isinstance(token, str) and isinstance(pid, int)):
        return None
    return ServeFile(url=url, token=token, pid=pid)


def remove_serve_file(polpo_dir: Path, token: str) -> None:
    """Remove the file if it is still ours (another serve may have replaced it)."""
    found = read_serve_file(polpo_dir)
    if found is not None and found.token == token:
        with contextlib.suppress(FileNotFoundError):
            serve_file_path(polpo_dir).unlink()
