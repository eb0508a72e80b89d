"""A stranger's display name (or a model's task title) must not turn into markup.

The attack: a Telegram user named ``[Tap here](http://evil.example/x)`` writes
to a bot under ``dmPolicy: pairing``. Polpo alerts the admins with the name;
if the name were Markdown, the alert would carry a live, disguised link (and
``**URGENT**`` would be bold) inside a message the admin trusts. Here the real
``polpo serve`` host sends the alert through the real Telegram channel to a
local fake Bot API, and the test reads what Telegram would show. WhatsApp has
no escape character: the same names must not format there either.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels" / "telegram"))
from fake_bot_api import TOKEN, Changes, FakeBotApi, message, user

from polpo.app import Polpo
from polpo.config import load_config
from polpo.core.models import Event
from polpo.gateway.format import render_parts
from polpo.host import Host
from polpo.notifications import render
from polpo.serve import ServeOptions, build_serve_host

ADMIN_ID = 111
STRANGER_ID = 666
LINK_NAME = "[Tap here](http://evil.example/x)"
BOLD_NAME = "**URGENT** <b>approve</b>"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(Changes())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def serving(
    tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Host]:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config: dict[str, Any] = {
        "project": "attacked",
        "settings": {
            "runner": {"enabled": False},
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "botTokenEnv": "SEC_TG_TOKEN",
                        "apiBaseUrl": api.base_url,
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "pairing",
                            "allowFrom": [str(ADMIN_ID)],
                        },
                    }
                }
            },
        },
    }
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("SEC_TG_TOKEN", TOKEN)
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    host = await build_serve_host(app, ServeOptions(port=0))
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await app.close()


def _to(api: FakeBotApi, chat: int) -> list[str]:
    return [str(m["text"]) for m in api.sent if str(m.get("chat_id")) == str(chat)]


async def test_a_display_name_is_no_link_in_the_telegram_pairing_alert(
    serving: Host, api: FakeBotApi
) -> None:
    stranger = user(STRANGER_ID, first=LINK_NAME, last=BOLD_NAME)
    api.push({"message": message("hello", message_id=1, sender=stranger)})
    await api.changes.until(lambda: any("Pairing request" in t for t in _to(api, ADMIN_ID)), 15)
    alert = next(t for t in _to(api, ADMIN_ID) if "Pairing request" in t)
    # Telegram HTML: the only markup is ours (the bold title, the code spans)
    assert "<a " not in alert and "href" not in alert
    assert re.findall(r"<(\w+)", alert) == ["b", "code", "code"]
    # the name shows as the characters it is
    assert "[Tap here](http://evil.example/x)" in alert
    assert "**URGENT** &lt;b&gt;approve&lt;/b&gt;" in alert
    # and the stranger's own pairing answer quotes the name harmlessly too
    await api.changes.until(lambda: bool(_to(api, STRANGER_ID)), 15)
    (answer,) = _to(api, STRANGER_ID)
    assert "href" not in answer and "<b>URGENT" not in answer


def _whatsapp(event_type: str, payload: dict[str, Any]) -> str:
    text = render(Event(1, event_type, payload, 0.0, "test")).text
    return "\n".join(render_parts(text, "whatsapp", 4000))


def test_a_display_name_neither_formats_nor_forges_lines_on_whatsapp() -> None:
    name = "*URGENT* _approve_ ~now~ ```x``` \n\nLet them in: /pair FAKECODE"
    out = _whatsapp(
        "peer:pairing_requested",
        {"peerId": "whatsapp:15550001", "displayName": name, "code": "K7M2XPG9", "channel": "wa"},
    )
    first = out.split("\n")[0]
    # our title is the only bold span; the name's markers are look-alikes
    assert first.count("*") == 2 and first.startswith("🔑 *Pairing request*")
    assert "*URGENT*" not in out and "_approve_" not in out and "~now~" not in out
    assert "```" not in out
    # the name stays on its one line: no forged "Let them in" line
    assert [line for line in out.split("\n") if line.startswith("Let them in")] == [
        "Let them in: `/pair K7M2XPG9`"
    ]


@pytest.mark.parametrize("fmt", ["telegram", "whatsapp"])
def test_a_models_task_title_and_summary_are_shown_literally_in_approval_alerts(
    fmt: str,
) -> None:
    payload = {
        "shortId": "fc3a",
        "approvalId": "a1",
        "taskShortId": "t1",
        "taskTitle": "[Approve now](http://evil.example/ok) **done**",
        "agent": "coder",
        "gate": "review",
        "hook": "task:complete",
        "summary": "All good. [details](http://evil.example/d)\n# Approved\n*ship it*",
    }
    text = render(Event(1, "approval:requested", payload, 0.0, "test")).text
    out = "\n".join(render_parts(text, fmt, 4096))  # type: ignore[arg-type]
    assert "href" not in out and "evil.example/ok" in out and "evil.example/d" in out
    if fmt == "telegram":
        assert "<b>done</b>" not in out and "<b>Approved" not in out and "<i>ship" not in out
    else:
        assert "*done*" not in out and "*Approved*" not in out and "_ship it_" not in out
