"""Every channel ``polpo serve`` runs, built from the config.

Each channel's module is imported only when that channel is configured, so
a project without Telegram never imports python-telegram-bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polpo.channels.base import Channel

if TYPE_CHECKING:
    from polpo.app import Polpo


def build_channels(app: Polpo) -> list[Channel]:
    channels: list[Channel] = []
    # whatsapp: added by the WhatsApp feature
    if app.config.channel_of_type("whatsapp") is not None:
        from polpo.channels.whatsapp.component import make_whatsapp_channel

        whatsapp = make_whatsapp_channel(app)
        if whatsapp is not None:
            channels.append(whatsapp)
    # telegram: added by the Telegram feature
    if app.config.channel_of_type("telegram") is not None:
        from polpo.channels.telegram.component import make_telegram_channel

        telegram = make_telegram_channel(app)
        if telegram is not None:
            channels.append(telegram)
    return channels
