"""When ``polpo serve`` runs the WhatsApp channel, and built from what config.

The channel is worth running when it has something to do: it takes messages
(``gateway.enableInbound``), a notification rule names it, or it has admins,
who get approval requests and failures by default (SPEC §7). Without
inbound it is send-only: it connects to send alerts, and messages people
send are acknowledged to the worker but not handed to the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.config import WhatsAppChannelConfig

if TYPE_CHECKING:
    from polpo.app import Polpo


def make_whatsapp_channel(app: Polpo, **options: Any) -> WhatsAppChannel | None:
    """The configured WhatsApp channel, or None when there is none or it would be idle.

    ``options`` go to :class:`WhatsAppChannel` (tests inject the worker, sleep, rng).
    """
    found = app.config.channel_of_type("whatsapp")
    if found is None:
        return None
    key, config = found
    if not isinstance(config, WhatsAppChannelConfig):
        return None
    rules = app.config.settings.notifications.rules
    routed = any(key in rule.channels for rule in rules)
    if not (config.gateway.enable_inbound or routed or config.admin_peers()):
        return None
    options.setdefault("clock", app.clock)
    options.setdefault("store", app.store)  # the database lease: one process per account
    return WhatsAppChannel(
        app.loaded.resolve(config.auth_dir),
        inbound=config.gateway.enable_inbound,
        bot_tag=config.bot_tag,
        **options,
    )
