"""The worker's inbound journal: a message is on disk before anyone hears of it.

whatsmeow sends WhatsApp's delivery receipt as soon as neonize's Go handler
has queued the event, before Python sees it; from then on WhatsApp will not
send that message again. So the worker writes every message it will hand on
to this journal, with one ``fsync`` per batch, before telling the parent; the
parent's ``ack`` (the gateway stored it) marks the entry done, and a worker
that starts replays what was never acknowledged (the gateway drops a
message it already has by its id).

The file, ``<authDir>/inbound.journal`` (0600, like the credentials), holds
one line per record: an entry ``{"s": seq, "id": message id, "raw": base64
of the neonize event, "e": the protocol event sent to the parent}``, or an
acknowledgement ``a <seq>``. Acknowledgements are written without ``fsync``:
losing one only replays a message the gateway already stored. A torn last
line (the process died mid-write) is skipped. Opening the journal rewrites
it with only the unacknowledged entries; once everything is acknowledged a
journal past :data:`TRIM_BYTES` is emptied, and a journal past
:data:`COMPACT_BYTES` is rewritten with only what is still pending (a
steady flood — strangers writing non-stop — always has something pending,
so the file would otherwise never shrink). The pending entries are kept in
memory for that: as many as messages wait for the gateway, a handful.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("polpo.whatsapp.worker")

JOURNAL_NAME = "inbound.journal"
#: once every entry is acknowledged, a journal larger than this is emptied
TRIM_BYTES = 256 * 1024
#: with entries still pending, a journal larger than this is rewritten with only them
COMPACT_BYTES = 4 * TRIM_BYTES


@dataclass(frozen=True)
class Entry:
    """One journaled message: the raw neonize event and the protocol line the parent got."""

    seq: int
    message_id: str
    raw: bytes
    line: str


class Journal:
    """Append-only, fsync'd per batch; thread-safe (events and acks come on different threads)."""

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self._sync = sync
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._next = 1
        #: message id → its unacknowledged entries, by seq
        self._pending: dict[str, dict[int, Entry]] = {}
        self._unacked: list[Entry] = []

    @classmethod
    def open(cls, path: Path, *, sync: bool = True) -> Journal:
        """Read ``path`` (if any), keep what was not acknowledged, and open it for appending."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        journal = cls(path, sync=sync)
        entries, acked = _read(path)
        journal._unacked = [e for e in entries if e.seq not in acked]
        journal._next = max((e.seq for e in entries), default=0) + 1
        for e in journal._unacked:
            journal._pending.setdefault(e.message_id, {})[e.seq] = e
        journal._rewrite(journal._unacked)
        return journal

    def unacked(self) -> list[Entry]:
        """What a previous run journaled and the parent never acknowledged, in order."""
        return list(self._unacked)

    def append(self, batch: Sequence[tuple[str, bytes, str]]) -> None:
        """Write ``(message id, raw event, protocol line)`` records, then one ``fsync``."""
        if not batch:
            return
        with self._lock:
            f = self._require()
            parts = []
            for message_id, raw, line in batch:
                seq = self._next
                self._next += 1
                self._pending.setdefault(message_id, {})[seq] = Entry(seq, message_id, raw, line)
                parts.append(_record(seq, message_id, raw, line))
            f.write("".join(parts).encode("utf-8"))
            f.flush()
            if self._sync:
                os.fsync(f.fileno())

    def ack(self, message_id: str) -> bool:
        """The parent stored ``message_id``: its entries are done. False when none was pending."""
        with self._lock:
            entries = self._pending.pop(message_id, None)
            if not entries:
                return False
            f = self._require()
            f.write("".join(f"a {s}\n" for s in sorted(entries)).encode("ascii"))
            f.flush()  # to the OS: survives the process, not a power cut (a replay is harmless)
            size = f.tell()
            if not self._pending and size > TRIM_BYTES:
                f.truncate(0)
                f.seek(0)
            elif size > COMPACT_BYTES:
                f.close()
                self._file = None
                pending = [e for by_seq in self._pending.values() for e in by_seq.values()]
                self._rewrite(sorted(pending, key=lambda e: e.seq))
            return True

    @property
    def pending(self) -> int:
        """How many messages wait for the parent's acknowledgement."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        with self._lock:
            f, self._file = self._file, None
            if f is not None:
                f.close()

    def _require(self) -> IO[bytes]:
        if self._file is None:
            self._file = _open_append(self.path)
        return self._file

    def _rewrite(self, keep: list[Entry]) -> None:
        """Replace the file with ``keep`` (atomically: a crash leaves the old or the new one)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            for e in keep:
                f.write(_record(e.seq, e.message_id, e.raw, e.line).encode("utf-8"))
            f.flush()
            if self._sync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self._sync:
            _fsync_dir(self.path.parent)
        self._file = _open_append(self.path)


def _record(seq: int, message_id: str, raw: bytes, line: str) -> str:
    """One entry line; ``line`` (already JSON: the protocol line) is embedded as is."""
    b64 = base64.b64encode(raw).decode("ascii")
    event = line.rstrip("\n")
    return f'{{"s":{seq},"id":{json.dumps(message_id)},"raw":"{b64}","e":{event}}}\n'


def _open_append(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read(path: Path) -> tuple[list[Entry], set[int]]:
    """The entries and the acknowledged seqs in ``path``; unreadable lines are skipped."""
    entries: list[Entry] = []
    acked: set[int] = set()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return entries, acked
    for line in data.splitlines():
        if line.startswith(b"a "):
            with contextlib.suppress(ValueError):
                acked.add(int(line[2:]))
            continue
        try:
            record = json.loads(line)
            event = record["e"]
            if not isinstance(event, dict):
                raise TypeError("not an event")
            entry = Entry(
                seq=int(record["s"]),
                message_id=str(record["id"]),
                raw=base64.b64decode(record["raw"]),
                line=json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n",
            )
        except (ValueError, KeyError, TypeError):
            log.warning("whatsapp worker: skipped an unreadable journal line (%d bytes)", len(line))
            continue
        entries.append(entry)
    return entries, acked
