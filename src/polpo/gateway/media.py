"""Voice notes, pictures and files: what an admitted peer's attachment becomes.

Routing calls :func:`prepare` for a message that carries a file (and is not
a typed command), after identity and policy admitted its sender — so a
stranger's file is never downloaded. The answer is a :class:`MediaTurn`:
either a chat turn (words, perhaps pictures, and what the reply starts
with) or a reply alone (a polite refusal, a file saved).

* **Voice notes and audio** are fetched (bounded by ``settings.media``:
  declared length and size, checked before any byte is fetched) and
  transcribed by ``settings.chat.transcriptionModel``; the transcript goes
  to the chat agent marked as a voice note, and the reply starts by quoting
  what was understood, so a misheard word is visible. It is never a command:
  only typed text is (a spoken "slash status" is chat).
* **Pictures** reach the chat model as image parts when its provider lists
  it in ``imageModels``; otherwise the reply says this model cannot see
  pictures (a caption is still answered).
* **Documents** are saved under the project's ``inbox/`` folder when
  ``settings.media.saveDocuments`` is on — as data, never opened or run —
  and otherwise declined.

Fetched files live in ``.polpo/media/`` (0700 folder, 0600 files), never in
the database, and the retention job prunes them (:func:`prune_media`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from polpo.channels.base import (
    Attachment,
    Channel,
    InboundMessage,
    can_fetch_attachments,
    show_typing,
)
from polpo.errors import ChannelError
from polpo.gateway.markdown import escape, literal_line
from polpo.llm.base import Picture

if TYPE_CHECKING:
    from polpo.app import Polpo

log = logging.getLogger(__name__)

#: under ``.polpo/``: files fetched for a turn, pruned with ``retentionDays``
MEDIA_DIR = "media"
#: under the project: where documents are saved when ``saveDocuments`` is on
INBOX_DIR = "inbox"
#: the longest transcript quoted at the start of a reply (the model gets it all)
QUOTE_CHARS = 600
#: picture types chat models take
PICTURE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")

# -- what the sender reads ------------------------------------------------------------

NO_TRANSCRIPTION = (
    "I got your voice note, but I can't listen to voice notes yet: no transcription "
    'model is configured (settings.chat.transcriptionModel, e.g. "openai:whisper-1"). '
    "Please type your message."
)
TRANSCRIPTION_UNREACHABLE = (
    "I got your voice note, but I can't listen to voice notes yet: {reason} "
    "Please type your message."
)
TRANSCRIPTION_FAILED = (
    "Sorry, I couldn't transcribe your voice note just now. "
    "Please try again in a moment, or type your message."
)
NO_WORDS = "I couldn't make out any words in that voice note. Could you say it again, or type it?"
AUDIO_TOO_LONG = (
    "That voice note is too long for me ({length}); I listen to at most {limit}. "
    "Please send a shorter one, or type your message."
)
AUDIO_TOO_BIG = (
    "That recording is too big for me ({size}; at most {limit}). "
    "Please send a shorter one, or type your message."
)
NO_PICTURES = (
    "I got your picture, but the model I use ({model}) can't see pictures. "
    "Please describe it in words."
)
NO_PICTURES_NOTE = "(The model I use can't see pictures; I read only your words.)"
PICTURE_TOO_BIG = (
    "That picture is too big for me ({size}; at most {limit}). Please send a smaller one."
)
PICTURE_TYPE = "I can't open that kind of picture ({mime}). Please send a JPEG or PNG."
NO_DOCUMENTS = (
    "I got your file{name}, but I don't take files here. "
    "(The owner can turn this on: settings.media.saveDocuments.)"
)
NO_DOCUMENTS_NOTE = "(I didn't keep your file: files are not taken here.)"
DOCUMENT_TOO_BIG = "That file is too big for me ({size}; at most {limit})."
DOCUMENT_SAVED = "Saved your file as {path} in the project ({size}). I don't open or run files."
NOT_FETCHED = "Sorry, I couldn't download your {what} ({reason}). Please send it again."
NOT_HERE = "I can't receive {what}s on this channel. Please type your message."
UNSEEN = "I can't watch videos or see stickers. I read text, voice notes and pictures."

# -- what the chat agent reads ----------------------------------------------------------

VOICE_WORDS = "[Voice note, transcribed automatically; some words may be misheard]\n{text}"
PICTURE_WORDS = "[The user sent a picture without words.]"
UNSEEN_PICTURE_WORDS = "[The user also sent a picture, which you cannot see.]\n{text}"
SAVED_WORDS = "[The user sent a file; it was saved in the project as {path}.]\n{text}"
UNKEPT_WORDS = "[The user also sent a file, which was not kept.]\n{text}"


@dataclass(frozen=True)
class MediaTurn:
    """What a message with a file becomes.

    ``prompt`` None: no chat turn; ``preface`` is the whole reply. Otherwise
    the chat agent gets ``prompt`` (and ``pictures``) and the reply is
    ``preface``, a blank line, then the agent's answer."""

    prompt: str | None
    #: the inbox row's outcome (``voice: transcribed``, ``picture: too big``, …)
    outcome: str
    preface: str = ""
    pictures: tuple[Picture, ...] = ()

    def reply(self, answer: str | None = None) -> str:
        """The text sent back: the preface and the chat agent's answer."""
        parts = [p for p in (self.preface, answer) if p]
        return "\n\n".join(parts)


async def prepare(app: Polpo, channel: Channel | None, msg: InboundMessage) -> MediaTurn | None:
    """What to do with ``msg``'s attachment; None: nothing special (plain text routing).

    For admitted peers only; never raises for what a sender or the network does."""
    attachment = msg.attachment
    if attachment is None:
        return None
    if attachment.kind in ("voice", "audio"):
        return await _voice(app, channel, msg, attachment)
    if attachment.kind == "image":
        return await _picture(app, channel, msg, attachment)
    if attachment.kind == "document":
        return await _document(app, channel, msg, attachment)
    if msg.text:  # a video's or a sticker's caption is answered as text
        return None
    return MediaTurn(None, f"{attachment.kind}: not seen", UNSEEN)


# -- voice notes ------------------------------------------------------------------------


async def _voice(
    app: Polpo, channel: Channel | None, msg: InboundMessage, attachment: Attachment
) -> MediaTurn:
    from polpo.llm.transcribe import NotConfigured, TranscriptionError, transcribe

    media = app.config.settings.media
    if not app.config.settings.chat.transcription_model:
        return MediaTurn(None, "voice: no transcription model", NO_TRANSCRIPTION)
    if attachment.seconds > media.max_audio_seconds:
        text = AUDIO_TOO_LONG.format(
            length=_duration(attachment.seconds), limit=_duration(media.max_audio_seconds)
        )
        return MediaTurn(None, "voice: too long", text)
    if attachment.size > media.max_audio_bytes:
        text = AUDIO_TOO_BIG.format(size=_size(attachment.size), limit=_size(media.max_audio_bytes))
        return MediaTurn(None, "voice: too big", text)
    fetched = await _fetch(app, channel, msg, media.max_audio_bytes, "voice note")
    if isinstance(fetched, MediaTurn):
        return fetched
    await show_typing(channel, msg.chat_id, True)
    try:
        words = await transcribe(fetched, mime=attachment.mime or "audio/ogg", config=app.config)
    except NotConfigured as e:
        reason = e.message if e.message.endswith(".") else e.message + "."
        return MediaTurn(
            None,
            f"voice: transcription not configured: {e.message}"[:500],
            TRANSCRIPTION_UNREACHABLE.format(reason=reason),
        )
    except TranscriptionError as e:
        log.warning("transcribing a voice note failed: %s", e.message)
        return MediaTurn(
            None, f"voice: transcription failed: {e.message}"[:500], TRANSCRIPTION_FAILED
        )
    finally:
        await show_typing(channel, msg.chat_id, False)
    if not words:
        return MediaTurn(None, "voice: no words", NO_WORDS)
    return MediaTurn(
        VOICE_WORDS.format(text=words),
        "voice: transcribed",
        preface=f"> 🎤 {literal_line(words, QUOTE_CHARS)}",
    )


# -- pictures ---------------------------------------------------------------------------


async def _picture(
    app: Polpo, channel: Channel | None, msg: InboundMessage, attachment: Attachment
) -> MediaTurn:
    from polpo.llm.models import accepts_images, chat_model_string

    media = app.config.settings.media
    model = chat_model_string(app.config)
    if model is None:  # the chat agent says how to configure one
        return MediaTurn(msg.text or PICTURE_WORDS, "picture: no model")
    if not accepts_images(model, app.config):
        if msg.text:
            return MediaTurn(
                UNSEEN_PICTURE_WORDS.format(text=msg.text),
                "picture: model takes none; caption answered",
                preface=NO_PICTURES_NOTE,
            )
        return MediaTurn(None, "picture: model takes none", NO_PICTURES.format(model=escape(model)))
    mime = attachment.mime.split(";", 1)[0].strip().lower()
    if mime not in PICTURE_TYPES:
        return MediaTurn(None, "picture: unsupported type", PICTURE_TYPE.format(mime=escape(mime)))
    if attachment.size > media.max_image_bytes:
        text = PICTURE_TOO_BIG.format(
            size=_size(attachment.size), limit=_size(media.max_image_bytes)
        )
        return MediaTurn(None, "picture: too big", text)
    fetched = await _fetch(app, channel, msg, media.max_image_bytes, "picture")
    if isinstance(fetched, MediaTurn):
        return fetched
    try:
        data = await asyncio.to_thread(fetched.read_bytes)
    except OSError as e:
        return _not_fetched("picture", str(e.strerror or e))
    return MediaTurn(
        msg.text or PICTURE_WORDS, "picture: shown to the model", pictures=(Picture(data, mime),)
    )


# -- documents --------------------------------------------------------------------------


async def _document(
    app: Polpo, channel: Channel | None, msg: InboundMessage, attachment: Attachment
) -> MediaTurn:
    media = app.config.settings.media
    if not media.save_documents:
        if msg.text:
            return MediaTurn(
                UNKEPT_WORDS.format(text=msg.text),
                "document: not taken; caption answered",
                preface=NO_DOCUMENTS_NOTE,
            )
        name = f" ({literal_line(attachment.name)})" if attachment.name else ""
        return MediaTurn(None, "document: not taken", NO_DOCUMENTS.format(name=name))
    if attachment.size > media.max_document_bytes:
        text = DOCUMENT_TOO_BIG.format(
            size=_size(attachment.size), limit=_size(media.max_document_bytes)
        )
        return MediaTurn(None, "document: too big", text)
    fetched = await _fetch(app, channel, msg, media.max_document_bytes, "file")
    if isinstance(fetched, MediaTurn):
        return fetched
    try:
        saved = save_document(app.loaded.root, attachment, fetched)
    except OSError as e:
        log.warning("saving a document under inbox/ failed: %s", e)
        return MediaTurn(
            None,
            f"document: not saved: {e}"[:500],
            "Sorry, I couldn't save your file in the project just now.",
        )
    size = fetched.stat().st_size
    fetched.unlink(missing_ok=True)  # kept once, where the owner asked for it
    shown = f"{INBOX_DIR}/{saved}"
    note = DOCUMENT_SAVED.format(path=f"`{shown}`", size=_size(size))
    if msg.text:
        return MediaTurn(
            SAVED_WORDS.format(path=shown, text=msg.text), "document: saved", preface=note
        )
    return MediaTurn(None, "document: saved", note)


_UNSAFE = re.compile(r"[^\w.\- ()]+")


def safe_name(name: str, mime: str) -> str:
    """A file name from what the sender called it: no folders, no hidden or odd
    characters, at most 100 characters; ``file`` plus an ending when nothing is left."""
    from polpo.channels.attachments import EXTENSIONS

    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        base = "file" + EXTENSIONS.get(mime.split(";", 1)[0].strip().lower(), ".bin")
    if len(base) > 100:
        stem, dot, ending = base.rpartition(".")
        base = (stem[: 99 - len(ending)] + dot + ending) if dot and len(ending) < 10 else base[:100]
    return base


def save_document(root: Path, attachment: Attachment, source: Path) -> str:
    """Copy ``source`` into ``root/inbox/`` under a safe, new name; returns that name.

    Opened beneath the project by descriptors, never following a symlink:
    an ``inbox`` that is a link to elsewhere is refused, and no existing
    file is overwritten (``plan (2).pdf`` instead). The copy is 0600: data
    for the owner and the agents, never executable."""
    name = safe_name(attachment.name, attachment.mime)
    stem, dot, ending = name.rpartition(".")
    if not dot or not stem:
        stem, ending = name, ""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    root_fd = os.open(root, flags)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(INBOX_DIR, 0o700, dir_fd=root_fd)
        dir_fd = os.open(INBOX_DIR, flags | os.O_NOFOLLOW, dir_fd=root_fd)
    finally:
        os.close(root_fd)
    try:
        for n in range(1, 1000):
            candidate = name if n == 1 else f"{stem} ({n}){'.' + ending if ending else ''}"
            try:
                fd = os.open(
                    candidate,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out)
            return candidate
        raise FileExistsError(f"{INBOX_DIR}/{name}: too many files of that name")
    finally:
        os.close(dir_fd)


# -- fetching and pruning -----------------------------------------------------------------


def media_dir(app: Polpo) -> Path:
    return app.loaded.polpo_dir / MEDIA_DIR


async def _fetch(
    app: Polpo, channel: Channel | None, msg: InboundMessage, max_bytes: int, what: str
) -> Path | MediaTurn:
    if channel is None or not can_fetch_attachments(channel):
        return MediaTurn(None, f"{what}: channel cannot fetch", NOT_HERE.format(what=what))
    try:
        return await channel.fetch_attachment(msg, media_dir(app), max_bytes=max_bytes)
    except ChannelError as e:
        log.info("fetching a %s from %s failed: %s", what, msg.channel, e)
        return _not_fetched(what, str(e).removeprefix(f"{msg.channel}: "))


def _not_fetched(what: str, reason: str) -> MediaTurn:
    return MediaTurn(
        None,
        f"{what}: not fetched: {reason}"[:500],
        NOT_FETCHED.format(what=what, reason=escape(reason[:200])),
    )


def prune_media(directory: Path, *, now: float, retention_days: float) -> int:
    """Delete files in ``directory`` last changed over ``retention_days`` ago; returns how many.

    Only regular files directly in it (nothing is followed); a folder that
    is missing is nothing to do."""
    cutoff = now - retention_days * 86_400
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if (
                entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ):
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _size(n: int) -> str:
    if n < 1_000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1_000:.0f} KB"
    return f"{n / 1_000_000:.1f} MB"


__all__ = ["MediaTurn", "media_dir", "prepare", "prune_media", "safe_name", "save_document"]
