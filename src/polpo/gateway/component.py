"""The gateway as a running part of ``polpo serve`` (or of ``polpo simulate``, ``polpo chat``, tests).

:class:`GatewayComponent` wires one :class:`~polpo.gateway.pipeline.Gateway`,
one :class:`~polpo.gateway.dispatcher.OutboxDispatcher` per channel and the
channels themselves, sharing one write batcher. Channels used only for
notifications still get a dispatcher (alerts are outbox rows too); their
inbound messages, if any arrive, are ignored by the gateway
(``enableInbound`` false).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from polpo.channels.base import Channel, ChannelStatus
from polpo.gateway.dispatcher import OutboxDispatcher
from polpo.gateway.pipeline import ChannelSettings, Gateway
from polpo.host import cancel_and_wait

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.host import Host
    from polpo.llm.base import Responder

log = logging.getLogger(__name__)


class GatewayComponent:
    name = "gateway"

    def __init__(
        self,
        app: Polpo,
        channels: Iterable[Channel] = (),
        *,
        responder: Responder | None = None,
        owner: str | None = None,
        configs: Mapping[str, ChannelSettings] | None = None,
        pace_seconds: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_seconds: float = 2.0,
        status_source: Callable[[], Sequence[ChannelStatus]] | None = None,
    ) -> None:
        self.app = app
        self.owner = owner
        self.batcher = app.ctx.write_batcher()
        self.gateway = Gateway(
            app,
            responder=responder,
            owner=owner,
            configs=configs,
            batcher=self.batcher,
            status_source=status_source,
        )
        self.channels: list[Channel] = []
        self.dispatchers: dict[str, OutboxDispatcher] = {}
        self._pace = pace_seconds
        self._sleep = sleep
        self._poll = poll_seconds
        self._fanout: asyncio.Task[None] | None = None
        self._started: list[Channel] = []
        for ch in channels:
            self.add_channel(ch)

    def add_channel(self, channel: Channel, config: ChannelSettings | None = None) -> None:
        self.channels.append(channel)
        self.gateway.add_channel(channel, config)
        d = OutboxDispatcher(
            self.app,
            channel,
            owner=self.owner,
            batcher=self.batcher,
            pace_seconds=self._pace,
            sleep=self._sleep,
            poll_seconds=self._poll,
            on_sent=self.gateway.remember_sent,
        )
        self.dispatchers[channel.name] = d
        self.gateway.on_enqueued(channel.name, d.wake)
        self.gateway.on_reply(channel.name, d.hand_over)
        self.gateway.on_connected(channel.name, d.retry_now)

    async def start(self) -> None:
        await self.gateway.start()
        for d in self.dispatchers.values():
            await d.start()
        self._fanout = asyncio.create_task(self._forward_ready(), name="polpo-outbox-ready")
        for ch in self.channels:
            try:
                await ch.start(self.gateway)
            except Exception:
                # one channel failing (a bad token) must not take the others down
                log.exception("channel %s did not start", ch.name)
                continue
            self._started.append(ch)

    async def stop(self) -> None:
        for ch in reversed(self._started):
            try:
                await ch.stop()
            except Exception:
                log.exception("stopping channel %s failed", ch.name)
        self._started.clear()
        await self.gateway.stop()
        for d in self.dispatchers.values():
            await d.stop()
        await cancel_and_wait(self._fanout)
        self._fanout = None
        await self.batcher.close()

    async def settle(self, within: float = 10.0) -> None:
        """Wait until every accepted message is processed and every due reply sent."""
        await self.gateway.wait_idle(within)
        for d in self.dispatchers.values():
            while await d.flush():
                pass

    async def _forward_ready(self) -> None:
        """``app.outbox_ready`` (rows others enqueued: alerts, pairing grants) → every dispatcher."""
        ready = self.app.outbox_ready
        while True:
            await ready.wait()
            ready.clear()
            for d in self.dispatchers.values():
                d.wake()


def add_gateway(host: Host) -> GatewayComponent:
    """``polpo serve``: the configured channels, their gateway and outbox dispatchers."""
    from polpo.channels.factory import build_channels

    channels = build_channels(host.app)
    component = GatewayComponent(host.app, channels)
    host.registry["gateway"] = component.gateway
    host.registry["channels"] = list(channels)
    host.add(component)
    return component
