"""When ``polpo serve`` runs a Telegram channel, and with what settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.channels.factory import build_channels
from polpo.channels.telegram import TelegramChannel
from polpo.channels.telegram.component import make_telegram_channel
from polpo.config import LoadedConfig, validate_config
from polpo.errors import ConfigError


@pytest.fixture
async def open_app(tmp_path: Path, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Polpo] = []

    async def open_(channels: dict[str, Any], rules: list[Any] | None = None) -> Polpo:
        data = {
            "project": "demo",
            "settings": {"notifications": {"channels": channels, "rules": rules or []}},
        }
        config = validate_config(data)
        loaded = LoadedConfig(config=config, path=tmp_path / "polpo.json", root=tmp_path)
        app = await Polpo.open(loaded, store_url=database_url)
        opened.append(app)
        return app

    yield open_
    for app in opened:
        await app.close()


async def test_inbound_gateway_makes_a_polling_channel(open_app: Callable[..., Any]) -> None:
    app = await open_app(
        {
            "tg": {
                "type": "telegram",
                "botTokenEnv": "MY_TG_TOKEN",
                "apiBaseUrl": "http://127.0.0.1:8081/",
                "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
            }
        }
    )
    channel = make_telegram_channel(app, env={"MY_TG_TOKEN": " 123:abc "})

    assert isinstance(channel, TelegramChannel)
    assert channel.name == "telegram"
    assert channel.text_format == "telegram"
    assert channel.max_text_length == 4096
    assert channel._token == "123:abc"
    assert channel._api_base_url == "http://127.0.0.1:8081"
    assert channel._inbound is True
    assert channel._clock is app.clock


async def test_alerts_only_channel_is_send_only(open_app: Callable[..., Any]) -> None:
    app = await open_app(
        {"telegram": {"type": "telegram"}},
        rules=[{"events": ["task:failed"], "channels": ["telegram"]}],
    )
    channel = make_telegram_channel(app, env={})

    assert channel is not None
    assert channel._inbound is False
    assert channel._token is None  # start() will say which variable to set


async def test_admins_get_default_alerts_so_the_channel_runs(
    open_app: Callable[..., Any],
) -> None:
    app = await open_app({"telegram": {"type": "telegram", "gateway": {"allowFrom": ["4242"]}}})
    assert make_telegram_channel(app, env={}) is not None


async def test_an_idle_or_absent_telegram_channel_is_not_run(
    open_app: Callable[..., Any],
) -> None:
    idle = await open_app({"telegram": {"type": "telegram"}})
    assert make_telegram_channel(idle, env={}) is None
    assert build_channels(idle) == []

    none = await open_app({})
    assert make_telegram_channel(none, env={}) is None


async def test_factory_builds_the_telegram_channel(
    open_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    app = await open_app({"telegram": {"type": "telegram", "gateway": {"enableInbound": True}}})
    channels = build_channels(app)
    assert [c.name for c in channels] == ["telegram"]


def test_a_bad_api_base_url_is_a_config_error_naming_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(
            {
                "project": "demo",
                "settings": {
                    "notifications": {
                        "channels": {"telegram": {"type": "telegram", "apiBaseUrl": "api.telegram"}}
                    }
                },
            }
        )
    assert "settings.notifications.channels.telegram.apiBaseUrl: must be an http(s) URL" in str(
        err.value
    )
