"""Channels: the edges. Each turns a network (WhatsApp, Telegram) or memory into
:class:`~polpo.channels.base.InboundMessage` values and sends text back. A
channel knows nothing of commands, policies or sessions.
"""

from polpo.channels.base import (
    Channel,
    ChannelListener,
    ChannelStatus,
    InboundMessage,
    OutboundMessage,
    SendResult,
)

__all__ = [
    "Channel",
    "ChannelListener",
    "ChannelStatus",
    "InboundMessage",
    "OutboundMessage",
    "SendResult",
]
