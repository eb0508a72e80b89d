"""When ``polpo serve`` runs a Telegram channel, and built from what config.

A Telegram channel is worth running when it has something to do: it takes
messages (``gateway.enableInbound``), a notification rule names it, or it has
admins, who get approval requests and failures by default (SPEC §7). Without
inbound it is send-only: no polling, so updates stay with Telegram.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from polpo.channels.telegram.channel import TelegramChannel
from polpo.config import TelegramChannelConfig

if TYPE_CHECKING:
    from polpo.app import Polpo


def make_telegram_channel(
    app: Polpo, *, env: Mapping[str, str] | None = None, **options: Any
) -> TelegramChannel | None:
    """The configured Telegram channel, or None when there is none or it would be idle.

    ``options`` go to :class:`TelegramChannel` (tests inject sleep, rng, timeouts).
    """
    found = app.config.channel_of_type("telegram")
    if found is None:
        return None
    key, config = found
    if not isinstance(config, TelegramChannelConfig):
        return None
    rules = app.config.settings.notifications.rules
    routed = any(key in rule.channels for rule in rules)
    if not (config.gateway.enable_inbound or routed or config.admin_peers()):
        return None
    return TelegramChannel.from_config(
        config, env=os.environ if env is None else env, clock=app.clock, **options
    )
