"""The typing indicator: refreshed while on, stopped when off, never for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fake_bot_api import Changes, FakeBotApi

from conftest import ManualSleep, RecordingListener
from polpo.channels.telegram import TelegramChannel
from polpo.clock import FakeClock


async def test_typing_is_refreshed_every_four_seconds_until_turned_off(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(inbound=False)
    sleep.gated = True
    await channel.start(listener)
    actions = lambda: api.calls_to("sendChatAction")  # noqa: E731

    await channel.typing("4242", True)
    await changes.until(lambda: len(actions()) == 1 and len(sleep.delays) == 1)
    assert actions() == [{"chat_id": 4242, "action": "typing"}]
    assert sleep.delays == [4.0]

    await channel.typing("4242", True)  # already on: no second refresher
    sleep.release()
    await changes.until(lambda: len(actions()) == 2 and len(sleep.delays) == 2)
    sleep.release()
    await changes.until(lambda: len(actions()) == 3 and len(sleep.delays) == 3)

    await channel.typing("4242", False)
    sleep.release()
    calls_before = len(api.calls)
    await channel.typing("4242", False)  # off twice is fine
    assert len(actions()) == 3
    assert len(api.calls) == calls_before


async def test_typing_gives_up_after_the_cap(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    clock: FakeClock,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(inbound=False, typing_max_seconds=10)
    sleep.gated = True
    await channel.start(listener)
    await channel.typing("7", True)
    for n in (1, 2, 3):
        await changes.until(lambda n=n: len(sleep.delays) == n)
        clock.advance(4)
        sleep.release()

    # 12 s after it started the refresher stops by itself.
    await asyncio.wait_for(channel._typing["7"], timeout=5)
    assert len(api.calls_to("sendChatAction")) == 3
    # … and a new turn can turn it on again.
    await channel.typing("7", True)
    await changes.until(lambda: len(api.calls_to("sendChatAction")) == 4)
    sleep.open()


async def test_typing_failures_are_ignored(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(inbound=False)
    sleep.gated = True
    await channel.start(listener)
    api.fail("sendChatAction", 403, "Forbidden: bot was blocked by the user")
    await channel.typing("5", True)
    await changes.until(lambda: len(sleep.delays) == 1)
    sleep.release()
    await changes.until(lambda: len(api.calls_to("sendChatAction")) == 2)
    await channel.typing("5", False)


async def test_stop_ends_typing(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(inbound=False)
    sleep.gated = True
    await channel.start(listener)
    await channel.typing("5", True)
    await changes.until(lambda: len(sleep.delays) == 1)
    await channel.stop()
    sleep.release()
    assert len(api.calls_to("sendChatAction")) == 1
    assert channel.status().state == "stopped"
