"""Voice notes, pictures and files through the real gateway (issue 9 §6).

A real project (config + SQLite file), the gateway over a ``MemoryChannel``
that holds each file's bytes (fetched as from WhatsApp), and the real chat
agent — pydantic-ai's loop — talking to a scripted OpenAI-compatible server
on a local port, which also answers ``/audio/transcriptions``. Tests assert
what the sender reads.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.channels.base import Attachment
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.gateway import media
from polpo.store.tables import inbox, sessions
from polpo.testing import MemoryChannel, running_gateway

from ..llm.fake_openai import FakeOpenAI, Upload, completion, fake_openai
from .conftest import OWNER, STRANGER, gateway_config, write_project

OGG = b"OggS" + bytes(300)
JPEG = b"\xff\xd8\xff\xe0" + bytes(100)
VOICE = Attachment("voice", "audio/ogg; codecs=opus", len(OGG), 4)
PHOTO = Attachment("image", "image/jpeg", len(JPEG))

Open = Callable[..., Awaitable[Polpo]]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai([completion(text="All good.")]) as fake:
        yield fake


@pytest.fixture
async def open_project(tmp_path: Path, clock: FakeClock, server: FakeOpenAI) -> AsyncIterator[Open]:
    """``await open_project(chat={…}, media={…}, imageModels=[…])``: a project whose chat
    model is ``local:vision`` on the fake server."""
    opened: list[Polpo] = []

    async def _open(image_models: list[str] | None = None, **settings: Any) -> Polpo:
        config = gateway_config()
        config["settings"].update(
            orchestratorModel="local:vision",
            providers={"local": {"baseUrl": server.base_url, "imageModels": image_models or []}},
            **settings,
        )
        root = tmp_path / f"proj{len(opened)}"
        app = await Polpo.open(load_config(write_project(root, config)), clock=clock)
        opened.append(app)
        return app

    yield _open
    for app in opened:
        await app.close()


async def _send(app: Polpo, wa: MemoryChannel, *files: tuple[bytes, Attachment, str]) -> list[str]:
    async with running_gateway(app, wa) as gw:
        for data, attachment, caption in files:
            await wa.receive_file(OWNER, data, attachment, caption)
            await gw.settle()
    return [s.text for s in wa.sent]


def _chat_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in server.received if r.path.endswith("/chat/completions")]


async def _outcomes(app: Polpo) -> list[str]:
    async with app.store.read() as conn:
        rows = await conn.execute(sa.select(inbox.c.outcome).order_by(inbox.c.id))
        return [str(r[0]) for r in rows]


# -- voice notes ---------------------------------------------------------------------------


async def test_a_voice_note_is_transcribed_quoted_and_answered_never_run_as_a_command(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    server.transcripts = ["/status please"]
    app = await open_project(chat={"transcriptionModel": "local:whisper-1"})

    [reply] = await _send(app, whatsapp, (OGG, VOICE, ""))

    # the reply starts by quoting what was understood, then the model's answer
    assert reply == "> 🎤 /status please\n\nAll good."
    upload = next(r for r in server.received if r.path == "/v1/audio/transcriptions")
    assert isinstance(upload.body["file"], Upload) and upload.body["file"].data == OGG
    assert upload.body["model"] == "whisper-1"
    # spoken "/status" is not a command: the chat model got it, marked as a voice note
    [request] = _chat_requests(server)
    said = request["messages"][-1]["content"]
    assert said.startswith("[Voice note, transcribed automatically") and "/status please" in said
    assert "Project" not in reply  # no /status report
    assert await _outcomes(app) == ["voice: transcribed"]
    # the audio is a 0600 file in a 0700 .polpo/media/, not in the database
    [kept] = list((app.loaded.polpo_dir / "media").iterdir())
    assert kept.read_bytes() == OGG and kept.suffix == ".ogg"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    async with app.store.read() as conn:
        history = (await conn.execute(sa.select(sessions.c.history))).scalar_one()
    assert "/status please" in json.dumps(history) and "OggS" not in json.dumps(history)


async def test_a_voice_note_over_the_caps_is_refused_before_any_download(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    server.transcripts = ["never"]
    app = await open_project(
        chat={"transcriptionModel": "local:whisper-1"},
        media={"maxAudioSeconds": 60, "maxAudioBytes": 200},
    )
    long_note = Attachment("voice", "audio/ogg", 100, 95)
    big_note = Attachment("voice", "audio/ogg", len(OGG), 5)

    replies = await _send(app, whatsapp, (OGG[:100], long_note, ""), (OGG, big_note, ""))

    assert replies == [
        media.AUDIO_TOO_LONG.format(length="1 min 35 s", limit="1 min"),
        media.AUDIO_TOO_BIG.format(size="304 bytes", limit="200 bytes"),
    ]
    assert whatsapp.fetched == [] and server.received == []
    assert await _outcomes(app) == ["voice: too long", "voice: too big"]


async def test_without_a_transcription_model_the_sender_is_told_politely(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    assert await _send(app, whatsapp, (OGG, VOICE, "")) == [media.NO_TRANSCRIPTION]
    assert whatsapp.fetched == [] and server.received == []


async def test_a_failed_or_empty_transcription_gets_an_apology(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    server.transcripts = [400, "   "]
    app = await open_project(chat={"transcriptionModel": "local:whisper-1"})
    replies = await _send(app, whatsapp, (OGG, VOICE, ""), (OGG + b"2", VOICE, ""))
    assert replies == [media.TRANSCRIPTION_FAILED, media.NO_WORDS]
    assert _chat_requests(server) == []


async def test_a_strangers_voice_note_is_never_downloaded(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    server.transcripts = ["hello"]
    app = await open_project(chat={"transcriptionModel": "local:whisper-1"})
    async with running_gateway(app, whatsapp) as gw:
        await whatsapp.receive_file(STRANGER, OGG, VOICE)
        await gw.settle()
    assert whatsapp.sent == [] and whatsapp.fetched == [] and server.received == []
    assert not (app.loaded.polpo_dir / "media").exists()


# -- pictures -----------------------------------------------------------------------------


async def test_a_picture_goes_to_a_model_that_sees_pictures(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project(image_models=["vis*"])

    replies = await _send(app, whatsapp, (JPEG, PHOTO, "what is this?"), (JPEG + b"2", PHOTO, ""))

    assert replies == ["All good.", "All good."]
    first, second = _chat_requests(server)
    content = first["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1]["image_url"]["url"] == (
        "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    )
    bare = second["messages"][-1]["content"]
    assert bare[0]["text"] == media.PICTURE_WORDS and bare[1]["type"] == "image_url"
    assert await _outcomes(app) == ["picture: shown to the model"] * 2


async def test_a_model_that_cannot_see_pictures_says_so(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project()  # imageModels not set for local

    replies = await _send(app, whatsapp, (JPEG, PHOTO, ""), (JPEG + b"2", PHOTO, "is it nice?"))

    assert replies == [
        media.NO_PICTURES.format(model="local:vision"),
        f"{media.NO_PICTURES_NOTE}\n\nAll good.",
    ]
    assert whatsapp.fetched == []
    [request] = _chat_requests(server)  # the caption was answered, without the picture
    assert request["messages"][-1]["content"] == media.UNSEEN_PICTURE_WORDS.format(
        text="is it nice?"
    )


async def test_a_typed_caption_command_runs_and_a_big_picture_is_refused(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project(image_models=["*"], media={"maxImageBytes": 50})
    replies = await _send(app, whatsapp, (JPEG, PHOTO, "/help"), (JPEG + b"2", PHOTO, ""))
    assert "/status" in replies[0]  # the typed command's answer
    assert replies[1] == media.PICTURE_TOO_BIG.format(size="104 bytes", limit="50 bytes")
    assert whatsapp.fetched == [] and server.received == []


# -- documents ----------------------------------------------------------------------------


async def test_documents_are_declined_unless_the_owner_enables_them(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    doc = Attachment("document", "application/pdf", 9, name="plan.pdf")
    [reply] = await _send(app, whatsapp, (b"%PDF-1.7\n", doc, ""))
    assert reply == media.NO_DOCUMENTS.format(name=" (plan.pdf)")
    assert whatsapp.fetched == [] and not (app.loaded.root / "inbox").exists()


async def test_an_enabled_document_is_saved_under_inbox_never_overwriting(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel
) -> None:
    app = await open_project(media={"saveDocuments": True})
    (app.loaded.root / "inbox").mkdir()
    (app.loaded.root / "inbox" / "plan.pdf").write_bytes(b"the owner's own plan")
    doc = Attachment("document", "application/pdf", 9, name="../../plan.pdf")
    sneaky = Attachment("document", "text/x-sh", 12, name=".bashrc")

    replies = await _send(
        app,
        whatsapp,
        (b"%PDF-1.7\n", doc, "summarise it"),
        (b"echo pwned\n", sneaky, ""),
    )

    inbox_dir = app.loaded.root / "inbox"
    assert (inbox_dir / "plan.pdf").read_bytes() == b"the owner's own plan"
    saved = inbox_dir / "plan (2).pdf"
    assert saved.read_bytes() == b"%PDF-1.7\n"
    assert saved.stat().st_mode & 0o777 == 0o600  # data, never executable
    assert (
        replies[0]
        == media.DOCUMENT_SAVED.format(path="`inbox/plan (2).pdf`", size="9 bytes")
        + "\n\nAll good."
    )
    [request] = _chat_requests(server)
    assert request["messages"][-1]["content"] == media.SAVED_WORDS.format(
        path="inbox/plan (2).pdf", text="summarise it"
    )
    assert (inbox_dir / "bashrc").read_bytes() == b"echo pwned\n"  # not hidden, not run
    assert replies[1] == media.DOCUMENT_SAVED.format(path="`inbox/bashrc`", size="11 bytes")
    assert list((app.loaded.polpo_dir / "media").iterdir()) == []  # kept once, in inbox/


async def test_an_inbox_that_is_a_symlink_is_not_followed(
    open_project: Open, server: FakeOpenAI, whatsapp: MemoryChannel, tmp_path: Path
) -> None:
    app = await open_project(media={"saveDocuments": True})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (app.loaded.root / "inbox").symlink_to(elsewhere)
    doc = Attachment("document", "application/pdf", 9, name="plan.pdf")
    [reply] = await _send(app, whatsapp, (b"%PDF-1.7\n", doc, ""))
    assert "couldn't save" in reply
    assert list(elsewhere.iterdir()) == []
