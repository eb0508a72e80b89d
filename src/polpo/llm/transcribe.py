"""Voice notes to text: the provider's OpenAI-compatible ``/audio/transcriptions``.

``settings.chat.transcriptionModel`` (``openai:whisper-1``, or any provider
with a ``baseUrl`` whose server implements the endpoint: a local
whisper server, vLLM, LocalAI) names the model. The audio goes up as a
multipart upload with a file name whose ending says its format (``.ogg``
for WhatsApp's Opus notes), which is how these servers tell formats apart.

Every way of not getting a transcript raises :class:`TranscriptionError`
with a short reason; the caller turns it into a polite reply.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from polpo.errors import ModelNotConfiguredError, PolpoError
from polpo.llm.models import openai_endpoint

if TYPE_CHECKING:
    from polpo.config import PolpoConfig

#: seconds one transcription may take (a 5-minute note takes a few seconds on OpenAI)
TIMEOUT_SECONDS = 120.0


class TranscriptionError(PolpoError):
    """A voice note could not be turned into text (not configured, refused, unreachable)."""


class NotConfigured(TranscriptionError):
    """No transcription model, or one Polpo cannot reach (its message says what to set)."""


async def transcribe(path: Path, *, mime: str, config: PolpoConfig) -> str:
    """The words spoken in the audio file at ``path`` (stripped; may be empty)."""
    model = config.settings.chat.transcription_model
    if not model:
        raise NotConfigured("no transcription model is configured")
    try:
        endpoint = openai_endpoint(model, config, purpose="settings.chat.transcriptionModel")
    except ModelNotConfiguredError as e:
        raise NotConfigured(e.message) from None

    import openai

    try:
        audio = await asyncio.to_thread(path.read_bytes)
    except OSError as e:
        raise TranscriptionError(f"cannot read the audio: {e.strerror or e}") from None
    client = openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=1, timeout=TIMEOUT_SECONDS
    )
    try:
        result = await client.audio.transcriptions.create(
            model=endpoint.model_name,
            file=(_upload_name(path, mime), audio, mime.split(";", 1)[0].strip()),
            response_format="json",
        )
    except openai.APIStatusError as e:
        raise TranscriptionError(f"the provider answered {e.status_code}: {_short(e)}") from None
    except openai.APIError as e:
        raise TranscriptionError(f"cannot reach the provider: {_short(e)}") from None
    finally:
        await client.close()
    text = result if isinstance(result, str) else getattr(result, "text", "")
    return str(text or "").strip()


#: the ending transcription servers expect for each audio type (they go by the file name)
_ENDINGS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/m4a": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/aac": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "audio/flac": ".flac",
}


def _upload_name(path: Path, mime: str) -> str:
    ending = _ENDINGS.get(mime.split(";", 1)[0].strip().lower())
    return f"voice{ending}" if ending else f"voice{path.suffix or '.ogg'}"


def _short(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:200]
