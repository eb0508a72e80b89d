"""``WhatsAppChannel`` supervising fake workers that speak the real protocol over real pipes."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from wa_support import OWN_PHONE, Changes, ManualSleep, RecordingListener, fake_log

from polpo.channels.base import InboundMessage, OutboundMessage
from polpo.channels.whatsapp.account import lock_holder
from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.outbound import OutboundOptions
from polpo.channels.whatsapp.process import WorkerOptions
from polpo.clock import FakeClock
from polpo.errors import ChannelError

Factory = Callable[..., WhatsAppChannel]
CHAT = "39123456789@s.whatsapp.net"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _runs(auth_dir: Path) -> int:
    return int((auth_dir / "fake_runs").read_text())


async def test_a_failing_worker_is_restarted_with_growing_backoff_until_it_connects(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    ch = make_channel("flaky", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    # rng() == 1.0: each delay is its full step, 1 s then 2 s
    assert sleep.delays == [1.0, 2.0]
    assert _runs(auth_dir) == 3 and ch.restarts == 2
    retrying = [s.detail for s in listener.statuses if s.state == "disconnected"]
    assert retrying[0] == "no route to web.whatsapp.com; retrying in 1 s"
    assert ch.status().account == OWN_PHONE
    assert all(_gone(pid) for pid in ch.worker_pids[:2])


async def test_backoff_has_jitter_and_is_capped_at_a_minute(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    # a worker that exits at once fails for ever
    never = WorkerOptions(command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    ch = make_channel("-", sleep=sleep, rng=lambda: 0.0, worker=never)
    await ch.start(listener)
    await changes.wait_for(lambda: len(sleep.delays) >= 9)
    await ch.stop()
    # half of each step with rng() == 0: 0.5, 1, 2, … and never more than 60
    assert sleep.delays[:8] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    retrying = [s.detail or "" for s in listener.statuses if s.state == "disconnected"]
    assert retrying[0] == "the WhatsApp worker exited with code 3; retrying in 0.5 s"


async def test_a_worker_crash_mid_session_fails_the_send_and_the_worker_comes_back(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    ch = make_channel("crash", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    with pytest.raises(ChannelError) as info:
        await ch.send(OutboundMessage(chat_id=CHAT, text="hello"))
    assert info.value.retryable
    await changes.wait_for(lambda: _runs(auth_dir) == 2 and ch.status().state == "connected")
    assert sleep.delays == [1.0]  # it had connected, so the backoff started over


async def test_a_worker_that_ignores_stop_is_killed(
    make_channel: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_channel("hang_on_stop", worker=WorkerOptions(stop_timeout=0.5))
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    pid = ch.worker_pids[0]
    started = time.monotonic()
    await ch.stop()
    assert time.monotonic() - started < 5
    assert _gone(pid)
    assert ch.status().state == "stopped"


async def test_logged_out_stops_for_good_and_says_to_log_in_again(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    ch = make_channel("logged_out", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "logged_out")
    assert "polpo whatsapp login" in (ch.status().detail or "")
    assert _runs(auth_dir) == 1 and sleep.delays == []
    assert not (auth_dir / "neonize.db").exists()  # void credentials are removed
    assert lock_holder(auth_dir) is None
    with pytest.raises(ChannelError):
        await ch.send(OutboundMessage(chat_id=CHAT, text="x"))


async def test_replaced_stops_without_a_fight(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    ch = make_channel("replaced", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "replaced")
    assert "another WhatsApp Web client" in (ch.status().detail or "")
    assert _runs(auth_dir) == 1 and sleep.delays == []
    assert (auth_dir / "neonize.db").exists()  # still valid: only this connection lost
    await ch.stop()
    assert ch.status().state == "replaced"


async def test_a_fatal_refusal_is_not_retried(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    ch = make_channel("fatal", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "error")
    assert ch.status().detail == "temporarily banned"
    assert _runs(auth_dir) == 1 and sleep.delays == []


async def test_sends_while_down_are_refused_as_retryable_then_flushed_in_order(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel(
        "flaky", sleep=sleep, outbound=OutboundOptions(pace_seconds=0)
    )  # pacing has its own test
    outbox = [OutboundMessage(chat_id=CHAT, text=f"reply {i}") for i in range(1, 4)]
    await ch.start(listener)
    await changes.wait_for(lambda: len(sleep.delays) == 1)  # run 1 failed; waiting to retry
    for message in outbox:
        with pytest.raises(ChannelError) as info:
            await ch.send(message)
        assert info.value.retryable
    sleep.release()
    await changes.wait_for(lambda: len(sleep.delays) == 2)  # run 2 failed too
    sleep.release()
    await changes.wait_for(lambda: listener.states()[-1:] == ["connected"])
    # what the gateway's outbox does on "connected": send the pending rows in order
    results = [await ch.send(m) for m in outbox]
    assert [r.message_id for r in results] == ["M3-1", "M3-2", "M3-3"]
    sends = [e for e in fake_log(auth_dir) if e["type"] == "send_text"]
    assert [(e["run"], e["text"], e["chat"]) for e in sends] == [
        (3, "reply 1", CHAT),
        (3, "reply 2", CHAT),
        (3, "reply 3", CHAT),
    ]


async def test_sends_to_one_chat_are_paced(
    make_channel: Factory, listener: RecordingListener, changes: Changes
) -> None:
    sleep = ManualSleep(changes)
    clock = FakeClock()
    ch = make_channel("ok", sleep=sleep, clock=clock, outbound=OutboundOptions(pace_seconds=1.5))
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    await ch.send(OutboundMessage(chat_id=CHAT, text="one"))
    clock.advance(0.5)
    await ch.send(OutboundMessage(chat_id=CHAT, text="two"))
    await ch.send(OutboundMessage(chat_id="39111111111", text="elsewhere"))
    assert sleep.delays == [1.0]  # only the second message to CHAT waited


async def test_inbound_messages_are_acked_only_after_the_listener_stored_them(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    clock = FakeClock(1_800_000_000.0)
    base = InboundMessage(
        channel="whatsapp",
        peer="39123456789",
        chat_id=CHAT,
        message_id="A1",
        text="old",
        timestamp=1_799_999_000.0,
    )
    msgs = [
        base.to_dict(),
        base.to_dict() | {"message_id": "A2", "text": "new", "timestamp": 1_800_000_000.0},
    ]
    (auth_dir / "fake_messages.json").write_text(json.dumps(msgs))
    ch = make_channel("messages", clock=clock)
    await ch.start(listener)
    await changes.wait_for(lambda: len(listener.messages) == 2)
    assert [(m.message_id, m.text, m.offline) for m in listener.messages] == [
        ("A1", "old", True),  # sent before this connection: offline catch-up
        ("A2", "new", False),
    ]
    await ch.stop()  # written after the acks on the same pipe: the log is complete now
    assert [e["message_id"] for e in fake_log(auth_dir) if e["type"] == "ack"] == ["A1", "A2"]


async def test_typing_and_read_receipts_reach_the_worker(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel("ok", sleep=sleep, clock=FakeClock(1_800_000_000.0))
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    await ch.typing("39123456789", True)
    await changes.wait_for(lambda: len(sleep.delays) == 1)
    await ch.typing("39123456789", False)
    message = InboundMessage(
        channel="whatsapp",
        peer="lid:12345",
        chat_id="12345@lid",
        message_id="B1:edit:99",
        text="x",
        timestamp=1_700_000_000.0,
    )
    await ch.mark_read(message)
    await ch.stop()  # the stop command comes after, so everything above was written
    log = [e for e in fake_log(auth_dir) if e["type"] in ("typing", "mark_read")]
    assert [(e["type"], e.get("on"), e["chat"]) for e in log] == [
        ("typing", True, CHAT),
        ("typing", False, CHAT),
        ("mark_read", None, "12345@lid"),
    ]
    assert log[2]["message_ids"] == ["B1"] and log[2]["sender"] == "12345@lid"
    assert log[2]["timestamp"] == 1_800_000_000.0  # when it was read (the clock), not sent


async def test_a_second_process_is_told_who_holds_the_account(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    first = make_channel("ok")
    await first.start(listener)
    await changes.wait_for(lambda: first.status().state == "connected")
    other = RecordingListener(changes)
    second = make_channel("ok", sleep=ManualSleep(changes, gated=True))
    await second.start(other)
    await changes.wait_for(lambda: second.status().state == "error")
    assert f"in use by pid {os.getpid()} (polpo serve)" in (second.status().detail or "")
    assert _runs(auth_dir) == 1  # the second never started a worker


async def test_unreadable_worker_lines_are_skipped(
    make_channel: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_channel("garbage")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")


async def test_the_ai_badge_is_off_unless_configured(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    ch = make_channel("ok")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    await ch.stop()
    tagged = make_channel("ok", worker=WorkerOptions(bot_tag=True))
    await tagged.start(listener)
    await changes.wait_for(lambda: tagged.status().state == "connected")
    envs = [e["bot_tag"] for e in fake_log(auth_dir) if e["type"] == "env"]
    assert envs == ["off", None]


async def test_a_message_the_listener_failed_to_store_is_not_acked(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    message = InboundMessage(
        channel="whatsapp",
        peer="39123456789",
        chat_id=CHAT,
        message_id="F1",
        text="hi",
        timestamp=1.0,
    )
    (auth_dir / "fake_messages.json").write_text(json.dumps([message.to_dict()]))
    listener.fail_next = 1
    ch = make_channel("messages")
    await ch.start(listener)
    await changes.wait_for(lambda: listener.fail_next == 0)
    await ch.stop()
    assert listener.messages == []
    assert [e for e in fake_log(auth_dir) if e["type"] == "ack"] == []


async def test_an_outage_is_reported_once_not_once_per_retry(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel("flaky", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: len(sleep.delays) == 1)
    sleep.release()
    await changes.wait_for(lambda: len(sleep.delays) == 2)
    assert ch.status().detail == "no route to web.whatsapp.com; retrying in 2 s"
    sleep.release()
    await changes.wait_for(lambda: ch.status().state == "connected")
    # the gateway alerts admins on "disconnected": it hears it once for the outage
    assert listener.states() == ["starting", "connecting", "disconnected", "connected"]


async def test_a_login_in_progress_is_waited_for_then_the_account_is_taken(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    from polpo.channels.whatsapp.account import AccountLock

    sleep = ManualSleep(changes, gated=True)
    login = AccountLock(auth_dir, "polpo whatsapp login")
    login.acquire()
    ch = make_channel("ok", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: len(sleep.delays) == 1)
    assert ch.status().state == "waiting_for_login"
    assert "(polpo whatsapp login)" in (ch.status().detail or "")
    login.release()
    sleep.release()
    await changes.wait_for(lambda: ch.status().state == "connected")


async def test_a_worker_silent_after_connect_is_killed_and_replaced(
    make_channel: Factory, listener: RecordingListener, changes: Changes, auth_dir: Path
) -> None:
    sleep = ManualSleep(changes)
    # 2 s: long enough for a loaded machine to start the next (talking) fake worker
    ch = make_channel("silent", sleep=sleep, worker=WorkerOptions(connect_timeout=2.0))
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    assert _runs(auth_dir) == 2 and sleep.delays == [1.0]
    first = next(s.detail for s in listener.statuses if s.state == "disconnected")
    assert first == "no answer from the WhatsApp worker within 2 s; retrying in 1 s"
    assert _gone(ch.worker_pids[0])


async def test_a_chat_id_that_is_not_whatsapp_is_refused_for_good(
    make_channel: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_channel("ok")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    with pytest.raises(ChannelError) as info:
        await ch.send(OutboundMessage(chat_id="telegram-user", text="x"))
    assert not info.value.retryable
    assert "is not a WhatsApp chat" in info.value.message


async def test_missed_keepalives_degrade_the_channel_but_sends_still_go_out(
    make_channel: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_channel("keepalive")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "degraded")
    assert "missed 1 keepalive" in (ch.status().detail or "")
    assert ch.status().connected  # the outbox keeps sending
    sent = await ch.send(OutboundMessage(chat_id=CHAT, text="still there?"))
    assert sent.message_id == "M1-1"
    await changes.wait_for(lambda: ch.status().state == "connected")
    assert listener.states() == ["starting", "connecting", "connected", "degraded", "connected"]


async def test_an_attachment_is_fetched_through_the_worker_into_the_media_folder(
    make_channel: Factory, listener: RecordingListener, changes: Changes, tmp_path: Path
) -> None:
    from polpo.channels.base import Attachment

    ch = make_channel("ok")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected")
    note = InboundMessage(
        channel="whatsapp",
        peer="39123456789",
        chat_id=CHAT,
        message_id="V1",
        text="",
        timestamp=1.0,
        kind="media",
        attachment=Attachment("voice", "audio/ogg; codecs=opus", 20, 2),
    )
    media = tmp_path / "media"
    path = await ch.fetch_attachment(note, media, max_bytes=1_000)
    assert path.parent == media and path.suffix == ".ogg"
    assert path.read_bytes() == b"fake file for V1"
    assert "39123456789" not in path.name  # named by a digest, nothing of the sender
    assert await ch.fetch_attachment(note, media, max_bytes=1_000) == path  # once
    await ch.stop()
    assert [e["type"] for e in fake_log(auth_dir_of(ch))].count("download") == 1
    with pytest.raises(ChannelError):  # not connected
        await ch.fetch_attachment(note, media, max_bytes=1_000)


def auth_dir_of(ch: WhatsAppChannel) -> Path:
    return ch.auth_dir
