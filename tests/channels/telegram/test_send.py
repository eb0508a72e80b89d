"""Sending: HTML, buttons, replies, the plain-text fallback and Telegram's errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_bot_api import FakeBotApi

from conftest import ManualSleep, RecordingListener
from polpo.channels.base import Button, OutboundMessage
from polpo.channels.telegram import TelegramChannel
from polpo.channels.telegram.errors import TelegramRetryAfter
from polpo.errors import ChannelError


@pytest.fixture
async def channel(
    make_channel: Callable[..., TelegramChannel], listener: RecordingListener
) -> TelegramChannel:
    ch = make_channel(inbound=False)
    await ch.start(listener)
    return ch


async def test_html_is_sent_with_parse_mode_html(api: FakeBotApi, channel: TelegramChannel) -> None:
    result = await channel.send(OutboundMessage("4242", "<b>3 tasks</b> &amp; 1 approval"))

    assert api.sent == [
        {"chat_id": 4242, "text": "<b>3 tasks</b> &amp; 1 approval", "parse_mode": "HTML"}
    ]
    assert result.message_id == "4242:501"


async def test_buttons_become_an_inline_keyboard_carrying_the_command(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    await channel.send(
        OutboundMessage(
            "4242",
            "Approval <code>K7M2</code>: review of task 'login page'",
            buttons=(Button("✅ Approve", "/approve K7M2"), Button("❌ Reject", "/reject K7M2")),
        )
    )

    markup = api.sent[0]["reply_markup"]
    assert markup == {
        "inline_keyboard": [
            [
                {"text": "✅ Approve", "callback_data": "/approve K7M2"},
                {"text": "❌ Reject", "callback_data": "/reject K7M2"},
            ]
        ]
    }


async def test_a_command_too_long_for_a_button_is_left_out(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    await channel.send(
        OutboundMessage("4242", "alert", buttons=(Button("Go", "/approve " + "x" * 60),))
    )

    assert "reply_markup" not in api.sent[0]
    assert api.sent[0]["text"] == "alert"


async def test_reply_quotes_the_message_in_the_same_chat(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    await channel.send(OutboundMessage("4242", "done", reply_to="4242:17"))
    await channel.send(OutboundMessage("4242", "pressed", reply_to="callback:q-1"))

    assert api.sent[0]["reply_parameters"] == {
        "message_id": 17,
        "allow_sending_without_reply": True,
    }
    assert "reply_parameters" not in api.sent[1]


async def test_html_telegram_rejects_is_delivered_as_plain_text(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    html = '<b>x < y</b> &amp; see <a href="https://example.com/t/1">task</a>'
    result = await channel.send(OutboundMessage("4242", html))

    assert len(api.sent) == 1
    assert "parse_mode" not in api.sent[0]
    assert api.sent[0]["text"] == "x < y & see task (https://example.com/t/1)"
    assert result.message_id is not None
    refused = api.calls_to("sendMessage")[0]
    assert refused["parse_mode"] == "HTML"


async def test_scripted_parse_error_keeps_the_buttons(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    api.fail("sendMessage", 400, "Bad Request: can't parse entities: Unsupported start tag")
    await channel.send(
        OutboundMessage("4242", "<i>approve?</i>", buttons=(Button("Approve", "/approve K7M2"),))
    )

    assert api.sent[0]["text"] == "approve?"
    assert api.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/approve K7M2"


async def test_text_that_is_too_long_is_sent_in_plain_parts(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    paragraph = "word " * 200
    text = "\n".join([paragraph] * 6)  # about 6000 characters
    await channel.send(OutboundMessage("4242", text, buttons=(Button("Ok", "/help"),)))

    assert len(api.sent) == 2
    assert all(len(p["text"]) <= 4096 for p in api.sent)
    assert " ".join(p["text"] for p in api.sent).split() == text.split()
    assert "reply_markup" not in api.sent[0] and "reply_markup" in api.sent[1]


async def test_blocked_by_the_user_is_not_retryable(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("4242", "hi"))

    assert err.value.retryable is False
    assert "blocked" in str(err.value)


async def test_chat_not_found_is_not_retryable(api: FakeBotApi, channel: TelegramChannel) -> None:
    api.fail("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("99", "hi"))

    assert err.value.retryable is False
    assert "chat not found" in str(err.value).lower()


async def test_flood_control_is_waited_out_then_sent(
    api: FakeBotApi, channel: TelegramChannel, sleep: ManualSleep
) -> None:
    api.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    result = await channel.send(OutboundMessage("4242", "hi"))

    assert sleep.delays == [7.0]
    assert len(api.sent) == 1
    assert result.message_id is not None


async def test_long_flood_control_is_a_retryable_error_with_its_wait(
    api: FakeBotApi, channel: TelegramChannel, sleep: ManualSleep
) -> None:
    api.fail("sendMessage", 429, "Too Many Requests: retry after 300", retry_after=300)
    with pytest.raises(TelegramRetryAfter) as err:
        await channel.send(OutboundMessage("4242", "hi"))

    assert err.value.retryable is True
    assert err.value.retry_after == 300
    assert sleep.delays == [], "not worth blocking the outbox for five minutes"
    assert api.sent == []


async def test_persistent_flood_control_gives_up_retryably(
    api: FakeBotApi, channel: TelegramChannel, sleep: ManualSleep
) -> None:
    api.fail("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2, times=10)
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("4242", "hi"))

    assert err.value.retryable is True
    assert sleep.delays == [2.0, 2.0, 2.0]


async def test_server_errors_are_retryable(api: FakeBotApi, channel: TelegramChannel) -> None:
    api.fail("sendMessage", 500, "Internal Server Error")
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("4242", "hi"))
    assert err.value.retryable is True

    await channel.send(OutboundMessage("4242", "hi again"))
    assert [p["text"] for p in api.sent] == ["hi again"]


async def test_a_group_that_became_a_supergroup_is_followed(
    api: FakeBotApi, channel: TelegramChannel
) -> None:
    api.fail(
        "sendMessage",
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=-1009876,
    )
    result = await channel.send(OutboundMessage("-55", "hello team"))

    assert api.sent[0]["chat_id"] == -1009876
    assert result.message_id == "-1009876:501"


async def test_network_down_is_retryable(api: FakeBotApi, channel: TelegramChannel) -> None:
    await api.stop()
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("4242", "hi"))
    assert err.value.retryable is True


async def test_sending_on_a_stopped_channel_is_retryable(
    make_channel: Callable[..., TelegramChannel],
) -> None:
    channel = make_channel()
    with pytest.raises(ChannelError) as err:
        await channel.send(OutboundMessage("4242", "hi"))
    assert err.value.retryable is True


async def test_mark_read_does_nothing(api: FakeBotApi, channel: TelegramChannel) -> None:
    from polpo.channels.base import InboundMessage

    before = len(api.calls)
    await channel.mark_read(InboundMessage("telegram", "1", "1", "1:1", "hi", 0.0))
    assert len(api.calls) == before
