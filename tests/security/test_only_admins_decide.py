"""An admitted peer who is not an admin cannot approve or reject, by any path.

docs/security.md: admitted peers chat with the agent and read; only admins
decide. Before this test, every admitted peer could ``/approve`` — and so
could anyone at all under ``dmPolicy: open`` — by typing the command, by
tapping the Approve button of an alert on Telegram (the button's data *is*
the command), or by reacting 👍 to an alert on WhatsApp.

Telegram: the real ``polpo serve`` host (runner, gateway, notifications, the
python-telegram-bot channel) over a local fake Bot API; the alert rule sends
the approval request to an admitted non-admin too, so they get the buttons.
WhatsApp: the real gateway pipeline over the in-memory channel, with the
alert the notifier sent reacted to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels" / "telegram"))
from fake_bot_api import TOKEN, Changes, FakeBotApi, callback, message, user

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.host import Host
from polpo.notifications import Notifier
from polpo.serve import ServeOptions, build_serve_host

testing = pytest.importorskip("polpo.testing")

ADMIN_ID = 111
PEER_ID = 222  # in allowFrom, not in admins
REFUSED = "Only an admin can use"


def _write(root: Path, config: dict[str, Any]) -> Path:
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(Changes())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def serving(
    tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Polpo, Host]]:
    config: dict[str, Any] = {
        "project": "decide",
        "agents": [{"name": "coder", "tools": ["read_file"]}],
        "settings": {
            "approvalGates": [{"name": "go", "hook": "task:start"}],
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "botTokenEnv": "SEC_TG_TOKEN",
                        "apiBaseUrl": api.base_url,
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [str(ADMIN_ID), str(PEER_ID)],
                            "admins": [str(ADMIN_ID)],
                        },
                    }
                },
                "rules": [
                    {
                        "events": ["approval:requested"],
                        "channels": ["tg"],
                        "to": [f"telegram:{ADMIN_ID}", f"telegram:{PEER_ID}"],
                    }
                ],
            },
        },
    }
    path = _write(tmp_path / "proj", config)
    monkeypatch.setenv("SEC_TG_TOKEN", TOKEN)
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    app = await Polpo.open(load_config(path))
    host = await build_serve_host(app, ServeOptions(port=0))
    await host.start()
    try:
        yield app, host
    finally:
        await host.stop()
        await app.close()


def _to(api: FakeBotApi, chat: int) -> list[dict[str, Any]]:
    return [m for m in api.sent if str(m.get("chat_id")) == str(chat)]


def _button(alert: dict[str, Any], prefix: str) -> str:
    markup = alert["reply_markup"]
    keyboard = json.loads(markup) if isinstance(markup, str) else markup
    return next(
        str(b["callback_data"])
        for row in keyboard["inline_keyboard"]
        for b in row
        if str(b["callback_data"]).startswith(prefix)
    )


async def test_a_non_admin_cannot_decide_on_telegram_by_button_or_command(
    serving: tuple[Polpo, Host], api: FakeBotApi
) -> None:
    app, host = serving
    await app.tasks.add("deploy to production", agent="coder")
    await api.changes.until(
        lambda: (
            any("reply_markup" in m for m in _to(api, PEER_ID))
            and any("reply_markup" in m for m in _to(api, ADMIN_ID))
        ),
        within=15,
    )
    (approval,) = await app.approvals.list()
    alert = next(m for m in _to(api, PEER_ID) if "reply_markup" in m)

    # the peer taps the Approve button, then the Reject one, then types both commands
    before = len(_to(api, PEER_ID))
    api.push(callback(_button(alert, "/approve "), query_id="q-peer-1", sender=user(PEER_ID)))
    api.push(callback(_button(alert, "/reject "), query_id="q-peer-2", sender=user(PEER_ID)))
    for n, text in enumerate([f"/approve {approval.short_id}", f"/reject {approval.short_id} no"]):
        api.push({"message": message(text, message_id=10 + n, sender=user(PEER_ID, "Pia"))})
    await api.changes.until(lambda: len(_to(api, PEER_ID)) >= before + 4, within=15)
    await host.registry["gateway"].wait_idle(5)
    answers = [str(m["text"]) for m in _to(api, PEER_ID)[before:]]
    assert len(answers) == 4 and all(REFUSED in a for a in answers), answers
    still = await app.approvals.get(approval.id)
    assert still.status == "pending" and still.resolved_by is None

    # the admin's tap decides
    api.push(callback(_button(alert, "/approve "), query_id="q-admin", sender=user(ADMIN_ID)))
    await api.changes.until(
        lambda: any("Approved" in str(m["text"]) for m in _to(api, ADMIN_ID)), 15
    )
    decided = await app.approvals.get(approval.id)
    assert decided.status == "approved" and decided.resolved_by == f"telegram:{ADMIN_ID}"


@pytest.mark.parametrize("policy", ["allowlist", "open"])
async def test_a_non_admin_reaction_decides_nothing_on_whatsapp(
    tmp_path: Path, policy: str
) -> None:
    admin, peer = "39111000111", "39222000222"
    gateway: dict[str, Any] = {"enableInbound": True, "dmPolicy": policy, "admins": [admin]}
    if policy == "allowlist":
        gateway["allowFrom"] = [admin, peer]
    config: dict[str, Any] = {
        "project": "decide",
        "agents": [{"name": "coder", "tools": ["read_file"]}],
        "settings": {
            "approvalGates": [{"name": "go", "hook": "task:start"}],
            "notifications": {
                "channels": {"wa": {"type": "whatsapp", "gateway": gateway}},
                "rules": [
                    {
                        "events": ["approval:requested"],
                        "channels": ["wa"],
                        "to": [f"whatsapp:{admin}", f"whatsapp:{peer}"],
                    }
                ],
            },
        },
    }
    app = await Polpo.open(load_config(_write(tmp_path / "proj", config)), clock=FakeClock())
    whatsapp = testing.MemoryChannel("whatsapp")
    notifier = Notifier(app)
    from polpo.runner.component import RunnerComponent
    from tests.runner.conftest import Script

    runner = RunnerComponent(app, model_factory=Script(["done"]).factory())
    try:
        async with testing.running_gateway(app, whatsapp) as gw:
            await runner.start()
            await notifier.start()
            await app.tasks.add("deploy to production", agent="coder")
            alerts = await whatsapp.wait_sent(2)
            (approval,) = await app.approvals.list()
            to_peer = next(a for a in alerts if a.chat_id.startswith(peer))
            to_admin = next(a for a in alerts if a.chat_id.startswith(admin))

            for emoji, target in (("👍", to_peer), ("👍🏽", to_admin), ("❌", to_peer)):
                replies = await testing.exchange(
                    gw,
                    whatsapp,
                    peer,
                    "",
                    kind="reaction",
                    reaction=emoji,
                    target_id=target.message_id,
                )
                assert replies and all(REFUSED in r for r in replies), replies
            for text in (f"/approve {approval.short_id}", f"/reject {approval.short_id} no"):
                (reply,) = await testing.exchange(gw, whatsapp, peer, text)
                assert REFUSED in reply
            assert (await app.approvals.get(approval.id)).status == "pending"

            await testing.exchange(
                gw,
                whatsapp,
                admin,
                "",
                kind="reaction",
                reaction="👍",
                target_id=to_admin.message_id,
            )
            decided = await app.approvals.get(approval.id)
            assert decided.status == "approved" and decided.resolved_by == f"whatsapp:{admin}"
    finally:
        await notifier.stop()
        await runner.stop()
        await app.close()
