"""How fast the Telegram channel moves updates and messages through a local
fake Bot API (the test suite's server): the channel's own overhead, since the
real Bot API's latency and flood limits (about 30 messages/s per bot) dwarf it.

Prints: inbound updates/s (polled, parsed, handed to a listener, acknowledged)
and outbound sendMessage calls/s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "channels" / "telegram"))

from fake_bot_api import TOKEN, Changes, FakeBotApi, message

from polpo.channels.base import ChannelStatus, InboundMessage, OutboundMessage
from polpo.channels.telegram import TelegramChannel

UPDATES = 3000
SENDS = 500


class Counter:
    def __init__(self, changes: Changes) -> None:
        self.n = 0
        self.changes = changes

    async def on_message(self, message: InboundMessage) -> None:
        self.n += 1
        if self.n == UPDATES:
            self.changes.notify()

    async def on_status(self, status: ChannelStatus) -> None:
        pass


async def run() -> None:
    changes = Changes()
    api = FakeBotApi(changes)
    await api.start()
    for i in range(UPDATES):
        api.push({"message": message(f"message {i}", message_id=i + 1)})
    listener = Counter(changes)
    channel = TelegramChannel(TOKEN, api_base_url=api.base_url, poll_timeout=1)
    started = time.perf_counter()
    await channel.start(listener)
    await changes.until(lambda: listener.n == UPDATES, within=120)
    inbound = time.perf_counter() - started

    started = time.perf_counter()
    for i in range(SENDS):
        await channel.send(OutboundMessage("111", f"<b>reply</b> {i}"))
    outbound = time.perf_counter() - started
    await channel.stop()
    await api.stop()

    print(f"inbound:  {UPDATES} updates in {inbound:.2f} s = {UPDATES / inbound:,.0f} updates/s")
    print(f"outbound: {SENDS} sends in {outbound:.2f} s = {SENDS / outbound:,.0f} messages/s")


if __name__ == "__main__":
    asyncio.run(run())
