"""When ``polpo serve`` runs the WhatsApp channel, and built from what config.

The channel is worth running when it has something to do: it takes messages
(``gateway.enableInbound``), a notification rule names it, or it has admins,
who get approval requests and failures by default (SPEC §7). Without
inbound it is send-only: it connects to send alerts, and messages people
send are acknowledged to the worker but not handed to the gateway.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.login import LoginOptions
from polpo.channels.whatsapp.outbound import OutboundOptions
from polpo.channels.whatsapp.ownership import OwnershipOptions
from polpo.channels.whatsapp.process import WorkerOptions
from polpo.channels.whatsapp.timing import Timing
from polpo.config import WhatsAppChannelConfig

if TYPE_CHECKING:
    from polpo.app import Polpo


def make_whatsapp_channel(
    app: Polpo,
    *,
    worker: WorkerOptions | None = None,
    timing: Timing | None = None,
    login: LoginOptions | None = None,
    outbound: OutboundOptions | None = None,
) -> WhatsAppChannel | None:
    """The configured WhatsApp channel, or None when there is none or it would be idle.

    The options are the channel's own (tests inject the worker and the timing);
    the config decides the rest: the auth dir, inbound, the AI badge, and the
    app's store (the database lease: one process per account) and clock.
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
    return WhatsAppChannel(
        app.loaded.resolve(config.auth_dir),
        inbound=config.gateway.enable_inbound,
        worker=replace(
            worker or WorkerOptions(),
            bot_tag=config.bot_tag,
            groups=config.gateway.group_policy == "open",
        ),
        login=login,
        outbound=outbound,
        ownership=OwnershipOptions(store=app.store),
        timing=timing or Timing(clock=app.clock),
    )
