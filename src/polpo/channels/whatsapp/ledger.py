"""The worker's sent ledger: which pre-assigned message ids already went out, and as what.

The outbox assigns each part's id before sending it and, after a crash,
sends the part again with the same id (SPEC §12). WhatsApp identifies a
message by the id its sender chooses, and whatsmeow can send with a chosen
id — but neonize's ``send_message`` cannot pass one (its Go ``SendMessage``
builds an empty ``SendRequestExtra``), so WhatsApp gets an id whatsmeow
generated. The worker therefore keeps this ledger: once WhatsApp accepted a
part, ``assigned id → WhatsApp's id`` is appended and ``fsync``'d *before*
the parent hears of it; a part sent again with an id already in the ledger
is answered from it and not sent twice.

``<authDir>/sent.ledger`` (0600): one line per part, ``<assigned> <sent id>
<timestamp>``. It keeps the last :data:`KEEP` lines (rewritten when it grows
past twice that). A miss re-reads what another worker appended meanwhile (a
worker whose parent was killed finishes its send while the next one starts).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

LEDGER_NAME = "sent.ledger"
#: how many sent parts are remembered (a resend comes within minutes, not days)
KEEP = 5000


@dataclass(frozen=True)
class SentPart:
    """What WhatsApp made of a part: its message id there, and when (seconds)."""

    message_id: str
    timestamp: float


class SentLedger:
    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self._sync = sync
        self._lock = threading.Lock()
        self._parts: dict[str, SentPart] = {}
        self._offset = 0
        self._lines = 0

    @classmethod
    def open(cls, path: Path, *, sync: bool = True) -> SentLedger:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ledger = cls(path, sync=sync)
        with ledger._lock:
            ledger._read_more()
            if ledger._lines > 2 * KEEP:
                ledger._rewrite()
        return ledger

    def get(self, assigned: str) -> SentPart | None:
        """The part sent with this pre-assigned id, if it went out (here or in another worker)."""
        with self._lock:
            found = self._parts.get(assigned)
            if found is None:
                self._read_more()
                found = self._parts.get(assigned)
            return found

    def record(self, assigned: str, part: SentPart) -> None:
        """WhatsApp accepted the part: on disk (fsync'd) before anyone is told."""
        if not assigned or any(c.isspace() for c in assigned + part.message_id):
            return  # not something a line can hold; never produced by the outbox
        line = f"{assigned} {part.message_id} {part.timestamp:.3f}\n".encode()
        with self._lock:
            self._read_more()  # keep the offset past what others appended
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
                if self._sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._offset += len(line)
            self._lines += 1
            self._parts[assigned] = part

    def _read_more(self) -> None:
        """Take in the lines appended since the last read (by us or another worker)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for next time
        for raw in data[:end].splitlines():
            fields = raw.decode("utf-8", "replace").split()
            if len(fields) != 3:
                continue
            with contextlib.suppress(ValueError):
                self._parts[fields[0]] = SentPart(fields[1], float(fields[2]))
                self._lines += 1
        self._offset += end

    def _rewrite(self) -> None:
        keep = list(self._parts.items())[-KEEP:]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            for assigned, part in keep:
                f.write(f"{assigned} {part.message_id} {part.timestamp:.3f}\n".encode())
            f.flush()
            if self._sync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._parts = dict(keep)
        self._lines = len(keep)
        self._offset = self.path.stat().st_size
