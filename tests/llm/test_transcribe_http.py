"""Voice notes to text over HTTP: ``transcribe`` → OpenAI SDK → a local fake server."""

from __future__ import annotations

from pathlib import Path

import pytest

from polpo.llm.transcribe import NotConfigured, TranscriptionError, transcribe

from .conftest import OpenProject
from .fake_openai import Upload, fake_openai

OGG = b"OggS" + bytes(200)


@pytest.fixture
def note(tmp_path: Path) -> Path:
    path = tmp_path / "whatsapp-abc.ogg"
    path.write_bytes(OGG)
    return path


async def test_a_voice_note_is_uploaded_to_the_configured_endpoint(
    open_project: OpenProject, note: Path
) -> None:
    with fake_openai([], transcripts=["  what is the status  "]) as server:
        app = await open_project(
            chat={"transcriptionModel": "local:whisper-large"},
            providers={"local": {"baseUrl": server.base_url}},
        )
        words = await transcribe(note, mime="audio/ogg; codecs=opus", config=app.config)
    assert words == "what is the status"
    [request] = server.received
    assert request.path == "/v1/audio/transcriptions"
    assert request.body["model"] == "whisper-large"
    upload = request.body["file"]
    assert isinstance(upload, Upload)
    assert upload.data == OGG
    assert upload.filename.endswith(".ogg")  # servers tell formats apart by the ending


async def test_openai_prefix_uses_openai_base_url_and_key(
    open_project: OpenProject, note: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_openai([], transcripts=["hi"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-voice")
        app = await open_project(chat={"transcriptionModel": "openai:whisper-1"})
        assert await transcribe(note, mime="audio/ogg", config=app.config) == "hi"
    assert server.received[0].headers["authorization"] == "Bearer sk-voice"
    assert server.received[0].body["model"] == "whisper-1"


async def test_no_model_a_provider_without_endpoint_and_a_server_error(
    open_project: OpenProject, note: Path
) -> None:
    app = await open_project()
    with pytest.raises(NotConfigured, match="no transcription model"):
        await transcribe(note, mime="audio/ogg", config=app.config)
    app = await open_project(chat={"transcriptionModel": "anthropic:claude"})
    with pytest.raises(NotConfigured, match=r"settings\.providers\.anthropic\.baseUrl"):
        await transcribe(note, mime="audio/ogg", config=app.config)
    with fake_openai([], transcripts=[400]) as server:
        app = await open_project(
            chat={"transcriptionModel": "local:w"},
            providers={"local": {"baseUrl": server.base_url}},
        )
        with pytest.raises(TranscriptionError, match="400") as e:
            await transcribe(note, mime="audio/ogg", config=app.config)
    assert not isinstance(e.value, NotConfigured)
