"""Updates from the (fake) Bot API reach the gateway as InboundMessages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fake_bot_api import DATE, Changes, FakeBotApi, callback, group_chat, message, user

from conftest import ManualSleep, RecordingListener
from polpo.channels.base import Attachment
from polpo.channels.telegram import TelegramChannel


async def test_private_text_message_reaches_the_listener(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": message("/status", message_id=7, sender=user(4242, "Ada", "Lovelace"))})
    channel = make_channel()
    await channel.start(listener)
    await changes.until(lambda: len(listener.messages) == 1)

    msg = listener.messages[0]
    assert msg.channel == "telegram"
    assert msg.peer == "4242"
    assert msg.chat_id == "4242"
    assert msg.message_id == "4242:7"
    assert msg.text == "/status"
    assert msg.display_name == "Ada Lovelace"
    assert msg.kind == "text"
    assert msg.is_group is False
    assert msg.timestamp == DATE
    assert channel.status().state == "connected"
    assert channel.status().account == "@polpo_test_bot"


async def test_display_name_falls_back_to_username_and_reply_names_the_quoted_message(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    nameless = {"id": 9, "is_bot": False, "first_name": "", "username": "grace"}
    quoted = message("the alert", message_id=3, sender=user(9))
    api.push({"message": message("yes", message_id=4, sender=nameless, reply_to_message=quoted)})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 1)

    assert listener.messages[0].display_name == "grace"
    assert listener.messages[0].quoted_id == "9:3"


async def test_the_offset_moves_only_after_the_listener_returns(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    sleep: ManualSleep,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    first = api.push({"message": message("one", message_id=1)})
    listener.failures.append(RuntimeError("database is locked"))
    await make_channel().start(listener)

    # The listener failed: the update is asked for again with the same offset.
    await changes.until(lambda: len(listener.messages) == 1)
    offsets = api.poll_offsets()
    assert offsets[0] is None
    assert offsets[1] is None, "a failed update must not be acknowledged"
    assert listener.messages[0].text == "one"
    assert sleep.delays == [1.0], "it backs off before asking again"

    # Stored: the next poll acknowledges it.
    await changes.until(lambda: first + 1 in api.poll_offsets())
    assert api.updates == []


async def test_updates_are_delivered_again_after_a_stop_mid_way(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": message("stored", message_id=1)})
    pending = api.push({"message": message("in flight", message_id=2)})
    first = RecordingListener(changes)
    first.hold = asyncio.Event()  # never set: the process dies before storing it
    first.hold_when = lambda m: m.text == "in flight"
    channel = make_channel(stop_grace=0)
    await channel.start(first)
    await changes.until(lambda: first.holding == 1)
    await channel.stop()
    assert [m.text for m in first.messages] == ["stored"]
    # Telegram was told about the stored one only: the offset stops at the one in flight.
    assert api.poll_offsets()[-1] == pending
    assert [u["update_id"] for u in api.updates] == [pending]

    # The next process gets the unacknowledged update again.
    restarted = make_channel()
    await restarted.start(listener)
    await changes.until(lambda: len(listener.messages) == 1)
    assert listener.messages[0].text == "in flight"
    assert listener.messages[0].message_id == "111:2"


async def test_a_graceful_stop_lets_the_message_in_hand_be_stored_and_acknowledges_it(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    update_id = api.push({"message": message("hello", message_id=1)})
    listener.hold = asyncio.Event()
    channel = make_channel(stop_grace=5)
    await channel.start(listener)
    await changes.until(lambda: listener.holding == 1)

    stopping = asyncio.create_task(channel.stop())
    await asyncio.sleep(0)  # let stop() begin: it waits for the message in hand
    listener.hold.set()
    await stopping

    assert [m.text for m in listener.messages] == ["hello"]
    assert api.poll_offsets()[-1] == update_id + 1, "the final poll acknowledges it"
    assert api.updates == []


async def test_edited_message_is_an_edit_with_its_own_id(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": message("/reject k7m2 to slow", message_id=5)})
    edit_id = api.push(
        {"edited_message": message("/reject k7m2 too slow", message_id=5, edit_date=DATE + 30)}
    )
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 2)

    original, edit = listener.messages
    assert original.kind == "text"
    assert edit.kind == "edit"
    assert edit.text == "/reject k7m2 too slow"
    assert edit.target_id == original.message_id == "111:5"
    assert edit.message_id == f"111:5:edit:{edit_id}"
    assert edit.message_id != original.message_id
    assert edit.timestamp == DATE + 30


async def test_a_button_press_becomes_its_command_and_the_spinner_stops(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
    clock: object,
) -> None:
    alert = message("Approval K7M2 needed", message_id=80, sender=user(123456, "Polpo"))
    alert["chat"] = {"id": 4242, "type": "private", "first_name": "Ada"}
    api.push(callback("/approve k7m2", query_id="q-77", sender=user(4242, "Ada", None), on=alert))
    await make_channel().start(listener)
    await changes.until(lambda: bool(api.calls_to("answerCallbackQuery")))

    msg = listener.messages[0]
    assert msg.text == "/approve k7m2"
    assert msg.kind == "text"
    assert msg.peer == "4242"
    assert msg.chat_id == "4242"
    assert msg.display_name == "Ada"
    assert msg.message_id == "callback:q-77"
    assert msg.quoted_id == "4242:80"
    assert api.calls_to("answerCallbackQuery") == [{"callback_query_id": "q-77"}]


async def test_callback_is_answered_only_after_it_is_stored(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push(callback("/approve k7m2", query_id="q-1"))
    listener.failures.append(RuntimeError("disk full"))
    await make_channel().start(listener)
    await changes.until(lambda: bool(api.calls_to("answerCallbackQuery")))

    assert len(listener.messages) == 1
    # one failed delivery, one stored; answered once, after storing
    assert len(api.calls_to("answerCallbackQuery")) == 1


async def test_group_messages_are_flagged(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": message("/status@polpo_test_bot", chat=group_chat(-100777))})
    api.push({"message": message("hi", chat=group_chat(-5, "group"), message_id=2)})
    api.push(
        {
            "channel_post": {
                "message_id": 3,
                "date": DATE,
                "chat": {"id": -100999, "type": "channel", "title": "News"},
                "sender_chat": {"id": -100999, "type": "channel", "title": "News"},
                "text": "post",
            }
        }
    )
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 3)

    cmd, small, post = listener.messages
    assert cmd.is_group and small.is_group and post.is_group
    assert cmd.text == "/status@polpo_test_bot", "left for the gateway to read"
    assert cmd.peer == "111" and cmd.chat_id == "-100777"
    assert cmd.message_id == "-100777:1"
    assert post.peer == "-100999" and post.display_name == "News"


async def test_media_without_caption_is_media_and_a_caption_is_text(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    photo = [{"file_id": "f1", "file_unique_id": "u1", "width": 10, "height": 10}]
    voice = {"file_id": "v1", "file_unique_id": "uv", "duration": 3}
    api.push({"message": message(None, message_id=1, photo=photo)})
    api.push({"message": message(None, message_id=2, voice=voice)})
    api.push({"message": message(None, message_id=3, photo=photo, caption="what is this?")})
    api.push({"message": message(None, message_id=4, new_chat_title="Renamed")})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 4)

    kinds = [(m.kind, m.text) for m in listener.messages]
    assert kinds == [
        ("media", ""),
        ("media", ""),
        ("text", "what is this?"),
        ("unsupported", ""),
    ]
    # described, not downloaded: the gateway fetches a file by its file_id if it wants it
    assert listener.messages[0].attachment == Attachment("image", "image/jpeg", ref="f1")
    assert listener.messages[1].attachment == Attachment("voice", "audio/ogg", seconds=3, ref="v1")
    assert listener.messages[3].attachment is None


async def test_a_document_and_an_audio_file_are_described(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    doc = {"file_id": "d1", "file_unique_id": "ud", "file_name": "plan.pdf", "file_size": 9}
    doc["mime_type"] = "application/pdf"
    song = {"file_id": "a1", "file_unique_id": "ua", "duration": 200, "mime_type": "audio/mpeg"}
    api.push({"message": message(None, message_id=1, document=doc, caption="the plan")})
    api.push({"message": message(None, message_id=2, audio=song)})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 2)

    plan, music = listener.messages
    assert (plan.kind, plan.text) == ("text", "the plan")
    assert plan.attachment == Attachment(
        "document", "application/pdf", 9, name="plan.pdf", ref="d1"
    )
    assert music.attachment == Attachment("audio", "audio/mpeg", seconds=200, ref="a1")


async def test_a_malformed_update_is_skipped_without_blocking_the_next(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": {"message_id": "not a number", "chat": "nope"}})
    api.push({"poll": {"id": "p"}})  # not a message at all
    api.push({"message": message("after", message_id=9)})
    await make_channel().start(listener)
    await changes.until(lambda: len(listener.messages) == 1)

    assert listener.messages[0].text == "after"


async def test_messages_sent_while_offline_are_flagged(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
    clock: object,
) -> None:
    from polpo.clock import FakeClock

    assert isinstance(clock, FakeClock)
    clock.set(DATE + 3600)
    api.push({"message": message("from an hour ago", date=DATE)})
    channel = make_channel()
    await channel.start(listener)
    await changes.until(lambda: len(listener.messages) == 1)
    api.push({"message": message("just now", message_id=2, date=DATE + 3600)})
    await changes.until(lambda: len(listener.messages) == 2)

    assert [m.offline for m in listener.messages] == [True, False]


async def test_send_only_channel_does_not_poll(
    api: FakeBotApi,
    changes: Changes,
    listener: RecordingListener,
    make_channel: Callable[..., TelegramChannel],
) -> None:
    api.push({"message": message("hello")})
    channel = make_channel(inbound=False)
    await channel.start(listener)
    await changes.until(lambda: channel.status().state == "connected")

    assert api.calls_to("getUpdates") == []
    assert channel.status().account == "@polpo_test_bot"
    assert len(api.updates) == 1, "updates stay with Telegram"
