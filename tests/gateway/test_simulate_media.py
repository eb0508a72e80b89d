"""``polpo simulate --audio/--image/--document`` as a user runs it: a real subprocess, the
real gateway and chat agent, and a scripted OpenAI-compatible server on a local port."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polpo.gateway import media

from ..cli.conftest import Result, run_polpo
from ..llm.fake_openai import FakeOpenAI, Upload, completion, fake_openai
from .conftest import OWNER, STRANGER, gateway_config, write_project

JPEG = b"\xff\xd8\xff\xe0" + bytes(100)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai([completion(text="Two tasks are running.")]) as fake:
        yield fake


def project(tmp_path: Path, server: FakeOpenAI, **settings: Any) -> Path:
    config = gateway_config()
    config["settings"].update(
        orchestratorModel="local:vision",
        providers={"local": {"baseUrl": server.base_url}},
        **settings,
    )
    root = tmp_path / "proj"
    write_project(root, config)
    return root


def simulate(root: Path, *args: str, sender: str = OWNER) -> Result:
    return run_polpo(root, "simulate", "whatsapp", "--from", sender, *args)


def wav(seconds: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * 8000 * seconds))
    return out.getvalue()


def test_a_voice_note_is_transcribed_quoted_and_answered(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    server.transcripts = ["slash status"]
    root = project(tmp_path, server, chat={"transcriptionModel": "local:whisper-1"})
    note = tmp_path / "note.wav"
    note.write_bytes(wav(2))

    r = simulate(root, "--audio", str(note))

    assert r.code == 0, r.err
    assert r.out == "> 🎤 slash status\n\nTwo tasks are running.\n"
    upload = server.received[0].body["file"]
    assert isinstance(upload, Upload) and upload.data == note.read_bytes()
    assert upload.filename.endswith(".wav")
    # too long: refused from its length, nothing sent to the provider
    sent = len(server.received)
    root2 = project(
        tmp_path / "b", server, chat={"transcriptionModel": "local:w"}, media={"maxAudioSeconds": 1}
    )
    r = simulate(root2, "--audio", str(note))
    assert r.out.strip() == media.AUDIO_TOO_LONG.format(length="2 s", limit="1 s")
    assert len(server.received) == sent


def test_a_picture_reaches_a_model_that_sees_pictures_and_not_one_that_does_not(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(JPEG)
    root = project(tmp_path, server)
    r = simulate(root, "--image", str(photo))
    assert (r.code, r.out.strip()) == (0, media.NO_PICTURES.format(model="local:vision"))
    assert server.received == []

    config = gateway_config()
    config["settings"].update(
        orchestratorModel="local:vision",
        providers={"local": {"baseUrl": server.base_url, "imageModels": ["vision"]}},
    )
    write_project(root, config)
    r = simulate(root, "--image", str(photo), "how many tasks?")
    assert (r.code, r.out.strip()) == (0, "Two tasks are running.")
    content = server.received[0].body["messages"][-1]["content"]
    assert content[0]["text"] == "how many tasks?"
    assert content[1]["image_url"]["url"].endswith(base64.b64encode(JPEG).decode())


def test_a_document_lands_in_inbox_when_enabled(tmp_path: Path, server: FakeOpenAI) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("buy milk\n")
    root = project(tmp_path, server, media={"saveDocuments": True})
    r = simulate(root, "--document", str(doc))
    assert r.code == 0, r.err
    assert (root / "inbox" / "notes.txt").read_text() == "buy milk\n"
    assert r.out.strip() == media.DOCUMENT_SAVED.format(path="`inbox/notes.txt`", size="9 bytes")
    # a stranger's file is neither fetched nor kept
    r = simulate(root, "--document", str(doc), sender=STRANGER)
    assert r.out == "" and sorted(p.name for p in (root / "inbox").iterdir()) == ["notes.txt"]


def test_file_mistakes_are_one_line_errors(tmp_path: Path, server: FakeOpenAI) -> None:
    root = project(tmp_path, server)
    missing = simulate(root, "--audio", str(tmp_path / "nope.ogg"))
    assert missing.code != 0 and missing.err.startswith("Error: --audio")
    assert "Traceback" not in missing.err
    both = simulate(root, "--audio", str(tmp_path), "--image", str(tmp_path))
    assert both.code == 2 and "one of --audio" in both.err
    nothing = simulate(root)
    assert nothing.code == 2 and "give the message text" in nothing.err
