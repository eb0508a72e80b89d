"""When ``polpo serve`` runs the WhatsApp channel, and with what settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wa_support import Changes, RecordingListener, fake_log, poll_until

from polpo.app import Polpo
from polpo.channels.base import Channel, InboundMessage
from polpo.channels.factory import build_channels
from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.component import make_whatsapp_channel
from polpo.config import LoadedConfig, validate_config


@pytest.fixture
async def open_app(tmp_path: Path, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Polpo] = []

    async def open_(channels: dict[str, Any], rules: list[Any] | None = None) -> Polpo:
        data = {
            "project": "demo",
            "settings": {"notifications": {"channels": channels, "rules": rules or []}},
        }
        loaded = LoadedConfig(
            config=validate_config(data), path=tmp_path / "polpo.json", root=tmp_path
        )
        app = await Polpo.open(loaded, store_url=database_url)
        opened.append(app)
        return app

    yield open_
    for app in opened:
        await app.close()


async def test_inbound_gateway_makes_the_channel(
    open_app: Callable[..., Any], tmp_path: Path
) -> None:
    app = await open_app(
        {"wa": {"type": "whatsapp", "gateway": {"enableInbound": True}}},
    )
    ch = make_whatsapp_channel(app)
    assert isinstance(ch, WhatsAppChannel) and isinstance(ch, Channel)
    assert (ch.name, ch.text_format, ch.max_text_length) == ("whatsapp", "whatsapp", 4000)
    assert ch.auth_dir == tmp_path / ".polpo" / "whatsapp"
    assert ch.inbound and not ch.worker_options.bot_tag
    assert ch.timing.clock is app.clock
    assert ch.ownership.options.store is app.store  # the database lease
    assert [c.name for c in build_channels(app)] == ["whatsapp"]


async def test_notification_rule_or_admins_make_a_send_only_channel(
    open_app: Callable[..., Any], tmp_path: Path
) -> None:
    app = await open_app(
        {"wa": {"type": "whatsapp", "authDir": "/srv/wa", "botTag": True}},
        rules=[{"events": ["task:failed"], "channels": ["wa"]}],
    )
    ch = make_whatsapp_channel(app)
    assert ch is not None and not ch.inbound and ch.worker_options.bot_tag
    assert ch.auth_dir == Path("/srv/wa")
    app2 = await open_app(
        {"wa": {"type": "whatsapp", "gateway": {"allowFrom": ["+39 123 456 789"]}}}
    )
    assert make_whatsapp_channel(app2) is not None


async def test_an_idle_or_missing_channel_is_not_started(open_app: Callable[..., Any]) -> None:
    assert make_whatsapp_channel(await open_app({})) is None
    idle = await open_app({"wa": {"type": "whatsapp"}})
    assert make_whatsapp_channel(idle) is None
    assert build_channels(idle) == []


async def test_a_send_only_channel_acknowledges_messages_without_delivering_them(
    make_channel: Callable[..., WhatsAppChannel],
    listener: RecordingListener,
    changes: Changes,
    auth_dir: Path,
) -> None:
    message = InboundMessage(
        channel="whatsapp",
        peer="39123456789",
        chat_id="39123456789@s.whatsapp.net",
        message_id="S1",
        text="hello?",
        timestamp=1.0,
    )
    (auth_dir / "fake_messages.json").write_text(json.dumps([message.to_dict()]))
    ch = make_channel("messages", inbound=False)
    await ch.start(listener)
    await poll_until(lambda: any(e["type"] == "ack" for e in fake_log(auth_dir)))
    await ch.stop()
    assert listener.messages == []
    assert [e["message_id"] for e in fake_log(auth_dir) if e["type"] == "ack"] == ["S1"]
