"""The polling loop's connection: backoff and recovery, bad tokens, conflicts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_bot_api import Changes, FakeBotApi, message

from conftest import ManualSleep, RecordingListener
from polpo.channels.base import OutboundMessage
from polpo.channels.telegram import TelegramChannel
from polpo.errors import ChannelError


async def test_network_down_backs_off_and_recovers_when_the_server_returns(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel()
    await channel.start(listener)
    await changes.until(lambda: channel.status().state == "connected")

    sleep.gated = True
    await api.stop()
    await changes.until(lambda: len(sleep.delays) == 1)
    assert channel.status().state == "disconnected"
    assert "cannot reach Telegram" in (channel.status().detail or "")
    for _ in range(6):
        sleep.release()
        await changes.until(lambda n=len(sleep.delays): len(sleep.delays) == n + 1)
    # 1, 2, 4 … doubling up to the 60 s cap (the test's jitter draws the top of each step)
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("111", "are you there?"))
    assert err.value.retryable is True

    await api.start()  # the same port again
    api.push({"message": message("back")})
    sleep.open()
    await changes.until(lambda: len(listener.messages) == 1)
    assert listener.messages[0].text == "back"
    assert channel.status().state == "connected"
    assert listener.states() == ["connecting", "connected", "disconnected", "connected"]

    # A later outage starts again from one second.
    sleep.delays.clear()
    sleep.gated = True
    await api.stop()
    await changes.until(lambda: len(sleep.delays) == 1)
    assert sleep.delays == [1.0]
    sleep.open()


async def test_jitter_spreads_each_delay_over_the_upper_half_of_its_step(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(rng=lambda: 0.0)
    sleep.gated = True
    await api.stop()
    await channel.start(listener)
    await changes.until(lambda: len(sleep.delays) == 1)
    sleep.release()
    await changes.until(lambda: len(sleep.delays) == 2)
    assert sleep.delays == [0.5, 1.0]
    sleep.open()


async def test_a_rejected_token_stops_polling_with_a_clear_status(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel(token="999:wrong")
    await channel.start(listener)
    await changes.until(lambda: channel.status().state == "error")

    detail = channel.status().detail or ""
    assert "rejected the bot token" in detail
    assert "TELEGRAM_BOT_TOKEN" in detail
    assert api.calls_to("getUpdates") == [], "no polling with a bad token"
    assert sleep.delays == [], "no retrying either"
    assert listener.states() == ["connecting", "error"]


async def test_a_missing_token_is_a_clear_error(
    listener: RecordingListener, make_channel: Callable[..., TelegramChannel]
) -> None:
    channel = make_channel(token=None, token_env="MY_BOT_TOKEN")
    with pytest.raises(ChannelError) as err:
        await channel.start(listener)

    assert "set MY_BOT_TOKEN" in str(err.value)
    assert err.value.retryable is False
    assert channel.status().state == "error"
    assert channel.status().detail == "set MY_BOT_TOKEN to the bot token from @BotFather"
    with pytest.raises(ChannelError, match="set MY_BOT_TOKEN"):
        await channel.send(OutboundMessage("1", "hi"))


async def test_another_poller_means_replaced_and_no_fight(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.fail(
        "getUpdates",
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot "
        "instance is running",
    )
    channel = make_channel()
    await channel.start(listener)
    await changes.until(lambda: channel.status().state == "replaced")

    assert "another program is receiving this bot's updates" in (channel.status().detail or "")
    assert len(api.calls_to("getUpdates")) == 1
    assert sleep.delays == []


async def test_a_webhook_conflict_says_how_to_remove_it(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.fail(
        "getUpdates",
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
        "to delete the webhook first",
    )
    channel = make_channel()
    await channel.start(listener)
    await changes.until(lambda: channel.status().state == "replaced")

    assert "polpo telegram delete-webhook" in (channel.status().detail or "")


async def test_flood_control_on_polling_waits_as_told(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.fail("getUpdates", 429, "Too Many Requests: retry after 12", retry_after=12)
    api.push({"message": message("hi")})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 1)

    assert sleep.delays == [12.0]


async def test_server_errors_while_polling_are_retried(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.fail("getUpdates", 502, "Bad Gateway", times=2)
    api.push({"message": message("hi")})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 1)

    assert sleep.delays == [1.0, 2.0]


async def test_stop_then_start_again_resumes(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel()
    api.push({"message": message("one", message_id=1)})
    await channel.start(listener)
    await changes.until(lambda: len(listener.messages) == 1)
    await channel.stop()
    assert channel.status().state == "stopped"

    api.push({"message": message("two", message_id=2)})
    await channel.start(listener)
    await changes.until(lambda: len(listener.messages) == 2)
    assert [m.text for m in listener.messages] == ["one", "two"]
    assert channel.status().state == "connected"
