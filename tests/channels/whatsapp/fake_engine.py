"""A stand-in for whatsmeow inside the real worker process (no network).

``engine_worker.py`` runs the real ``polpo.channels.whatsapp.worker`` with
this client in place of neonize's: the worker's handlers, journal, pump and
protocol are the real ones; only the WhatsApp side is scripted.

On ``connect()`` the client plays ``DIR/engine_script.json``, a list of steps:

  {"event": "Connected"}                       the handler of neonize's ConnectedEv
  {"event": "Message", "b64": "..."}           a serialized neonize ``Message`` event
  {"event": "UndecryptableMessage", "b64": …}  likewise
  {"event": "KeepAliveTimeout"} / {"event": "KeepAliveRestored"}

then waits until it is stopped. What the worker asks of it (sends, presence,
read marks) is appended to ``DIR/engine_log.jsonl``. ``send_message`` answers
with ids ``3EB0F<run><n>``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neonize.proto import Neonize_pb2 as pb
from neonize.proto.Neonize_pb2 import JID, Device, SendResponse


class FakeEvents:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any, Any], None]] = {}
        self.qr_handler: Callable[[Any, bytes], None] | None = None

    def __call__(self, ev_type: Any) -> Callable[[Callable[[Any, Any], None]], None]:
        def register(fn: Callable[[Any, Any], None]) -> None:
            self.handlers[ev_type.DESCRIPTOR.name] = fn

        return register

    def qr(self, fn: Callable[[Any, bytes], None]) -> None:
        self.qr_handler = fn


class FakeClient:
    def __init__(self, db: Path, on_login_status: Callable[[str], None]) -> None:
        self.dir = db.parent
        self.event = FakeEvents()
        self._stopped = threading.Event()
        self._sent = 0
        runs = self.dir / "engine_runs"
        self._run = int(runs.read_text()) + 1 if runs.exists() else 1
        runs.write_text(str(self._run))

    def _log(self, **entry: Any) -> None:
        with (self.dir / "engine_log.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def connect(self) -> None:
        script = json.loads((self.dir / "engine_script.json").read_text())
        for step in script:
            name = step["event"]
            if "b64" in step:
                ev = getattr(pb, name).FromString(base64.b64decode(step["b64"]))
            else:
                ev = getattr(pb, name)()
            self.event.handlers[name](self, ev)
        self._stopped.wait()

    def get_me(self) -> Device:
        return Device(
            JID=JID(User="39000000001", Server="s.whatsapp.net", Device=7),
            LID=JID(User="900001", Server="lid", Device=7),
            PushName="Owner",
        )

    def get_pn_from_lid(self, jid: JID) -> JID:
        return JID()

    def send_message(self, to: JID, message: Any) -> SendResponse:
        self._sent += 1
        self._log(
            type="send",
            to=f"{to.User}@{to.Server}",
            message=base64.b64encode(message.SerializeToString()).decode(),
        )
        return SendResponse(
            ID=f"3EB0F{self._run}{self._sent:04d}", Timestamp=int(time.time() * 1000)
        )

    def download_any(self, message: Any) -> bytes:
        """The file's bytes, from ``DIR/engine_media.bin`` (WhatsApp's media servers)."""
        self._log(type="download")
        return (self.dir / "engine_media.bin").read_bytes()

    def send_presence(self, presence: Any) -> None:
        self._log(type="presence", presence=presence.value.decode())

    def send_chat_presence(self, jid: JID, state: Any, media: Any) -> None:
        self._log(type="chat_presence", chat=f"{jid.User}@{jid.Server}")

    def mark_read(
        self, *ids: str, chat: JID, sender: JID, receipt: Any, timestamp: int | None = None
    ) -> None:
        self._log(
            type="mark_read",
            ids=list(ids),
            chat=f"{chat.User}@{chat.Server}",
            sender=f"{sender.User}@{sender.Server}",
            timestamp=timestamp,
        )

    def disconnect(self) -> None:
        self._log(type="disconnect")
        self._stopped.set()

    def stop(self) -> None:
        self._stopped.set()


def make_fake_client(db: Path, on_login_status: Callable[[str], None]) -> FakeClient:
    return FakeClient(db, on_login_status)
