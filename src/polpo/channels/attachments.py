"""Where a message's file goes once fetched, and how it is written.

Shared by the channels that can fetch attachments (the WhatsApp worker,
``MemoryChannel``), so every file in ``.polpo/media/`` looks the same: named
by a digest of its channel, chat and message id (nothing of the sender in
the name, and a message fetched again finds its file), with an ending from
its MIME type; new (never overwritten, never through a symlink), 0600, in a
0700 folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from polpo.channels.base import InboundMessage

#: file name endings by MIME type (what a transcription API or a model wants to see)
EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}


def attachment_path(directory: Path, message: InboundMessage) -> Path:
    """Where ``message``'s attachment goes in ``directory``."""
    key = f"{message.chat_id}\0{message.message_id}".encode()
    digest = hashlib.sha256(key).hexdigest()
    mime = message.attachment.mime.split(";", 1)[0].strip().lower() if message.attachment else ""
    return directory / f"{message.channel}-{digest[:24]}{EXTENSIONS.get(mime, '.bin')}"


def write_new_file(path: Path, data: bytes) -> None:
    """``data`` into a new 0600 file at ``path`` (its folder made 0700 if missing).

    Raises ``FileExistsError`` if anything (a file, a symlink) is already there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
