"""Telegram voice notes and photos through the real gateway: the file fetched with
``getFile`` from the local fake Bot API (admitted senders only), transcribed or shown
by a scripted OpenAI-compatible server, the answer sent back with ``sendMessage``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fake_bot_api import TOKEN, FakeBotApi, message, user
from tests.llm.fake_openai import Upload, completion, fake_openai

from polpo.app import Polpo
from polpo.channels.telegram import TelegramChannel
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.gateway.component import GatewayComponent

OWNER_ID = 111
STRANGER_ID = 222
OGG = b"OggS" + bytes(50)
JPEG = b"\xff\xd8\xff\xe0" + bytes(40)


def _project(root: Path, api: FakeBotApi, base_url: str) -> Path:
    config: dict[str, Any] = {
        "project": "tg-media",
        "settings": {
            "orchestratorModel": "local:vision",
            "providers": {"local": {"baseUrl": base_url, "imageModels": ["vision"]}},
            "chat": {"transcriptionModel": "local:whisper-1"},
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "apiBaseUrl": api.base_url,
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [str(OWNER_ID)],
                        },
                    }
                }
            },
        },
    }
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config))
    return path


def _voice(file_id: str, sender: int, message_id: int) -> dict[str, Any]:
    voice = {
        "file_id": file_id,
        "file_unique_id": f"u-{file_id}",
        "duration": 3,
        "mime_type": "audio/ogg",
        "file_size": len(OGG),
    }
    return {"message": message(None, message_id=message_id, sender=user(sender), voice=voice)}


async def test_a_voice_note_and_a_photo_are_fetched_for_the_owner_only(
    tmp_path: Path, api: FakeBotApi
) -> None:
    api.files = {"v-owner": OGG, "v-stranger": OGG, "p-owner": JPEG}
    replies = [completion(text="Noted."), completion(text="A cat.")]
    with fake_openai(replies, transcripts=["call the plumber"]) as server:
        app = await Polpo.open(
            load_config(_project(tmp_path, api, server.base_url)), clock=FakeClock()
        )
        channel = TelegramChannel(TOKEN, api_base_url=api.base_url, poll_timeout=1)
        gw = GatewayComponent(app, [channel])
        await gw.start()
        try:
            api.push(_voice("v-stranger", STRANGER_ID, 1))
            api.push(_voice("v-owner", OWNER_ID, 2))
            photo = [
                {"file_id": "p-small", "file_unique_id": "s", "width": 90, "height": 90},
                {"file_id": "p-owner", "file_unique_id": "b", "width": 800, "height": 600},
            ]
            api.push({"message": message(None, message_id=3, sender=user(OWNER_ID), photo=photo)})
            await api.changes.until(lambda: len(api.sent) >= 2, within=20)
            await gw.settle()
        finally:
            await gw.stop()
            await app.close()

    voice_reply, photo_reply = (m["text"] for m in api.sent)
    assert "🎤 call the plumber" in voice_reply and voice_reply.endswith("Noted.")
    assert photo_reply == "A cat."
    assert [m["chat_id"] for m in api.sent] == [OWNER_ID, OWNER_ID]
    # the stranger's voice note was never fetched; the photo's largest size was
    assert sorted(api.downloads) == ["files/p-owner", "files/v-owner"]
    [upload] = [r.body["file"] for r in server.received if "audio" in r.path]
    assert isinstance(upload, Upload) and upload.data == OGG
    [chat] = [r.body for r in server.received if r.path.endswith("/chat/completions")][1:]
    assert chat["messages"][-1]["content"][1]["type"] == "image_url"
