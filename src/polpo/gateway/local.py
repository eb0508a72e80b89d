"""The gateway from a terminal: ``polpo simulate`` and ``polpo chat``.

Both run the real pipeline (dedupe, identity, policy, pairing, commands,
sessions, chat agent) against the project's real database over a
:class:`~polpo.channels.memory.MemoryChannel`, so nothing goes to any
network. Their inbox and outbox rows carry an owner (``simulate:<pid>``,
``chat:<pid>``) so a ``polpo serve`` running beside them leaves them alone;
channel states are not recorded (the real channels' states stay as they are).
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from polpo.channels.base import Attachment, ChannelStatus, MediaKind
from polpo.channels.memory import MemoryChannel, SentMessage
from polpo.config import GatewayConfig
from polpo.errors import PolpoError
from polpo.gateway.component import GatewayComponent
from polpo.gateway.pipeline import InlineChannelConfig
from polpo.peerid import TERMINAL_OWNER, PeerIdError, normalize_peer
from polpo.store.tables import inbox

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.llm.base import Responder

#: ``polpo chat`` talks as this peer on the memory channel (an admin).
CHAT_PEER = TERMINAL_OWNER
SIMULATED_CHANNELS = ("whatsapp", "telegram", "memory")


class SimulateError(PolpoError):
    """``polpo simulate`` cannot run as asked (unknown channel, bad sender id, inbound off)."""

    exit_code = 2


@dataclass(frozen=True)
class Simulated:
    peer_id: str
    #: what the gateway did with the message: done | ignored | failed | received
    status: str
    outcome: str | None
    replies: list[SentMessage]

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer_id,
            "status": self.status,
            "outcome": self.outcome,
            "replies": [
                {
                    "chatId": r.chat_id,
                    "text": r.text,
                    "buttons": [
                        {"label": b.label, "command": b.command} for b in r.message.buttons
                    ],
                }
                for r in self.replies
            ],
        }


#: ``--audio``, ``--image``, ``--document``: the attachment kind each plays
FILE_KINDS: dict[str, MediaKind] = {"audio": "voice", "image": "image", "document": "document"}
#: the largest file ``polpo simulate`` reads (the gateway's own limits apply after)
MAX_SIMULATED_FILE = 200_000_000


@dataclass(frozen=True)
class SimulatedFile:
    """A file the simulated message carries, as WhatsApp would describe it."""

    attachment: Attachment
    data: bytes


def simulated_file(option: str, path: Path) -> SimulatedFile:
    """The file given to ``--audio``, ``--image`` or ``--document`` (``option`` without
    dashes): its bytes, MIME type from its name, size; a voice note for ``--audio``.
    Raises :class:`SimulateError` with one line when it cannot be read."""
    kind = FILE_KINDS[option]
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SimulateError(f"--{option} {path}: not a file")
        if size > MAX_SIMULATED_FILE:
            raise SimulateError(f"--{option} {path}: too big ({size} bytes)")
        data = path.read_bytes()
    except OSError as e:
        raise SimulateError(f"--{option} {path}: {e.strerror or e}") from None
    mime = mimetypes.guess_type(path.name)[0] or (
        "audio/ogg" if kind == "voice" else "application/octet-stream"
    )
    name = path.name if kind == "document" else ""
    return SimulatedFile(Attachment(kind, mime, len(data), _wav_seconds(data), name), data)


def _wav_seconds(data: bytes) -> int:
    """A WAV file's length (the one format whose header says it plainly); 0 otherwise."""
    import io
    import wave

    if not data.startswith(b"RIFF"):
        return 0
    try:
        with wave.open(io.BytesIO(data)) as w:
            frames: int = w.getnframes()
            rate: int = w.getframerate()
        return round(frames / rate)
    except (wave.Error, EOFError, ZeroDivisionError):
        return 0


async def simulate(
    app: Polpo,
    channel: str,
    sender: str,
    text: str,
    *,
    name: str | None = None,
    responder: Responder | None = None,
    owner: str | None = None,
    file: SimulatedFile | None = None,
) -> Simulated:
    """Put one message from ``sender`` on ``channel`` through the gateway; return what it sent.

    With ``file``, the message carries it (``text`` is then its caption) and the
    gateway fetches it from the in-memory channel as it would from WhatsApp."""
    configs: dict[str, Any] = {}
    if channel not in SIMULATED_CHANNELS:
        raise SimulateError(
            f'unknown channel "{channel}": use one of {", ".join(SIMULATED_CHANNELS)}'
        )
    if channel == "memory":
        configs["memory"] = _console_config()
    else:
        found = app.config.channel_of_type(channel)
        if found is None:
            raise SimulateError(
                f"no {channel} channel in settings.notifications.channels: add one to simulate it"
            )
        key, settings = found
        if not settings.gateway.enable_inbound:
            raise SimulateError(
                f"{channel} takes no messages: set settings.notifications.channels.{key}"
                ".gateway.enableInbound to true"
            )
    try:
        peer_id = normalize_peer(sender, default_channel=channel)
    except PeerIdError as e:
        raise SimulateError(f"--from: {e}") from e
    if not peer_id.startswith(f"{channel}:"):
        raise SimulateError(
            f"--from {sender!r} is a {peer_id.split(':', 1)[0]} peer, not {channel}"
        )
    external = peer_id.split(":", 1)[1]
    mem = MemoryChannel(channel, clock=app.clock)
    states = await _recorded_states(app)
    component = GatewayComponent(
        app,
        responder=responder,
        owner=owner or f"simulate:{os.getpid()}",
        configs=configs,
        pace_seconds=0,
        status_source=lambda: states,
    )
    component.add_channel(mem)
    await component.start()
    try:
        message_id = f"simulate-{uuid.uuid4().hex}"
        if file is not None:
            message = mem.file_message(
                external,
                file.data,
                file.attachment,
                text,
                display_name=name,
                message_id=message_id,
            )
        else:
            message = mem.message(external, text, display_name=name, message_id=message_id)
        await mem.deliver(message)
        await component.settle(within=app.config.settings.chat.turn_timeout_seconds + 30)
    finally:
        await component.stop()
    async with app.store.read() as conn:
        row = (
            await conn.execute(
                sa.select(inbox.c.status, inbox.c.outcome).where(
                    inbox.c.channel == channel, inbox.c.message_id == message.message_id
                )
            )
        ).first()
    status, outcome = (row.status, row.outcome) if row is not None else ("received", None)
    return Simulated(peer_id, status, outcome, list(mem.sent))


async def _recorded_states(app: Polpo) -> list[ChannelStatus]:
    """The real channels' states as ``polpo serve`` recorded them (for ``/status``)."""
    from polpo.services.status import read_channel_states

    return [
        ChannelStatus(s.channel, s.state, s.detail, s.account)
        for s in await read_channel_states(app.ctx)
    ]


def _console_config() -> InlineChannelConfig:
    return InlineChannelConfig(
        type="memory",
        gateway=GatewayConfig(
            enable_inbound=True,
            dm_policy="allowlist",
            allow_from=[CHAT_PEER],
            rate_limit_per_minute=0,
        ),
    )


async def chat_session(
    app: Polpo,
    read_line: Callable[[], Awaitable[str | None]],
    write: Callable[[str], None],
    *,
    responder: Responder | None = None,
) -> int:
    """``polpo chat``: lines in, replies out, until end of input or ``/quit``. Returns turns."""
    mem = MemoryChannel("memory", text_format="plain", clock=app.clock)
    states = await _recorded_states(app)
    component = GatewayComponent(
        app,
        responder=responder,
        owner=f"chat:{os.getpid()}",
        pace_seconds=0,
        status_source=lambda: states,
    )
    component.add_channel(mem, _console_config())
    external = CHAT_PEER.split(":", 1)[1]
    turns = 0
    await component.start()
    try:
        while True:
            line = await read_line()
            if line is None or line.strip().lower() in ("/quit", "/exit"):
                break
            if not line.strip():
                continue
            before = len(mem.sent)
            await mem.receive(external, line, display_name="owner")
            await component.settle(within=app.config.settings.chat.turn_timeout_seconds + 30)
            for sent in mem.sent[before:]:
                write(sent.text)
            turns += 1
    finally:
        await component.stop()
    return turns
