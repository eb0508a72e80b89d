"""``polpo serve`` with a Telegram bot, end to end over the Bot API wire.

The real serve host (runner, gateway, notifications, the python-telegram-bot
channel) talks HTTP to a local fake Bot API; only Telegram's servers and the
LLM vendor are replaced. A user asks for /status, gets the approval alert
with buttons, taps Approve, and the agent's work lands.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import TOKEN, FakeBotApi, callback, message, user
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.app import Polpo
from polpo.config import load_config
from polpo.core.models import Event
from polpo.host import Host
from polpo.serve import ServeOptions, build_serve_host

OWNER_ID = 111


def _model() -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            args = {"path": "notes.txt", "content": "from telegram\n"}
            return ModelResponse(parts=[ToolCallPart("write_file", args, "w1")])
        return ModelResponse(parts=[TextPart("wrote notes.txt")])

    return FunctionModel(respond)


@pytest.fixture
async def serving(
    tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Polpo, Host, Path]]:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config: dict[str, Any] = {
        "project": "tg-demo",
        "agents": [{"name": "coder", "tools": ["write_file"]}],
        "settings": {
            "approvalGates": [{"name": "go", "hook": "task:start"}],
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "botTokenEnv": "E2E_TG_TOKEN",
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
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("E2E_TG_TOKEN", TOKEN)
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    model = _model()
    monkeypatch.setattr("polpo.runner.runner.DEFAULT_MODEL_FACTORY", lambda agent, cfg: model)
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    host = await build_serve_host(app, ServeOptions(port=0))
    await host.start()
    try:
        yield app, host, root
    finally:
        await host.stop()
        await app.close()


def _sent_to_owner(api: FakeBotApi) -> list[dict[str, Any]]:
    return [m for m in api.sent if str(m.get("chat_id")) == str(OWNER_ID)]


async def test_status_alert_and_approve_button_over_the_bot_api(
    serving: tuple[Polpo, Host, Path], api: FakeBotApi
) -> None:
    app, _host, root = serving

    api.push({"message": message("/status", message_id=1, sender=user(OWNER_ID))})
    await api.changes.until(lambda: len(_sent_to_owner(api)) >= 1, within=15)
    status = _sent_to_owner(api)[0]
    assert "tg-demo" in status["text"]
    assert status.get("parse_mode") == "HTML"

    task = await app.tasks.add("write the notes", agent="coder")
    await api.changes.until(
        lambda: any("reply_markup" in m for m in _sent_to_owner(api)), within=15
    )
    alert = next(m for m in _sent_to_owner(api) if "reply_markup" in m)
    markup = alert["reply_markup"]
    keyboard = json.loads(markup) if isinstance(markup, str) else markup
    approve = next(
        b["callback_data"]
        for row in keyboard["inline_keyboard"]
        for b in row
        if b["callback_data"].startswith("/approve ")
    )
    assert (await app.tasks.get(task.id)).status == "awaiting_approval"

    done: list[str] = []

    async def on_done(ev: Event) -> None:  # wakes ``until`` when the runner finishes
        done.append(str(ev.payload.get("taskId")))
        api.changes.notify()

    app.bus.subscribe("task:done", on_done)
    api.push(callback(approve, query_id="q-1", sender=user(OWNER_ID)))
    await api.changes.until(lambda: task.id in done, within=15)
    assert (root / "notes.txt").read_text() == "from telegram\n"
    await api.changes.until(
        lambda: any(c == {"callback_query_id": "q-1"} for c in api.calls_to("answerCallbackQuery")),
        within=5,
    )


async def test_a_stranger_gets_no_answer(
    serving: tuple[Polpo, Host, Path], api: FakeBotApi
) -> None:
    _app, host, _root = serving
    api.push({"message": message("/status", message_id=7, sender=user(999, "Eve"))})
    api.push({"message": message("/help", message_id=2, sender=user(OWNER_ID))})
    # the owner's later message is answered; by then the stranger's was handled too
    await api.changes.until(lambda: len(_sent_to_owner(api)) >= 1, within=15)
    await host.registry["gateway"].wait_idle(5)
    assert [m for m in api.sent if str(m.get("chat_id")) == "999"] == []
