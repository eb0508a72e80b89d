"""SPEC §12 through the pipeline: dedupe, order, crash-resume, the outbox under trouble."""

from __future__ import annotations

import asyncio
import random

import sqlalchemy as sa

from polpo.clock import FakeClock
from polpo.llm.base import ChatReply
from polpo.store.tables import inbox, peers
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, OWNER_PEER, OpenProject, inbox_rows, outbox_rows


async def test_a_duplicate_message_id_is_answered_once_also_after_reopening(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, OWNER, "hi", message_id="WA-1") == ["echo: hi"]
        assert await exchange(gw, whatsapp, OWNER, "hi", message_id="WA-1") == []
        assert gw.gateway.stats["duplicate"] == 1
    await app.close()
    app2 = await open_project(reopen=True)
    channel = MemoryChannel("whatsapp")
    async with running_gateway(app2, channel, responder=responder) as gw:
        assert await exchange(gw, channel, OWNER, "hi", message_id="WA-1") == []
    assert len(responder.calls) == 1


class ShuffledResponder(RecordingResponder):
    """Answers after a random number of event-loop turns, so lanes interleave."""

    async def respond(self, *, peer_id: str, text: str, history: list[object]) -> ChatReply:
        for _ in range(random.randint(0, 20)):
            await asyncio.sleep(0)
        return await super().respond(peer_id=peer_id, text=text, history=history)


async def test_replies_to_each_peer_keep_their_order_under_concurrency(
    open_project: OpenProject, whatsapp: MemoryChannel
) -> None:
    app = await open_project(dmPolicy="open", allowFrom=[], rateLimitPerMinute=0)
    responder = ShuffledResponder()
    peers_ = [f"49151000{n:03d}" for n in range(25)]
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        messages = [whatsapp.message(p, f"{p} #{i}") for i in range(8) for p in peers_]

        # each peer's messages are delivered in order; peers race each other
        async def peer_sends(p: str) -> None:
            for m in [m for m in messages if m.peer == p]:
                await whatsapp.deliver(m)
                await asyncio.sleep(0)

        await asyncio.gather(*(peer_sends(p) for p in peers_))
        await gw.settle()
    for p in peers_:
        assert whatsapp.sent_to(f"{p}@s.whatsapp.net") == [f"echo: {p} #{i}" for i in range(8)]
    # one turn at a time per peer: each saw exactly the turns before it
    for p in peers_:
        mine = [c for c in responder.calls if c.peer_id == f"whatsapp:{p}"]
        assert [len(c.history) for c in mine] == list(range(8))


class BlockingResponder(RecordingResponder):
    """Never answers: the process "dies" mid-turn."""

    async def respond(self, *, peer_id: str, text: str, history: list[object]) -> ChatReply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_turn_cut_by_a_crash_is_resumed_and_answered_once(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=BlockingResponder()) as gw:
        await whatsapp.receive(OWNER, "are you there?")
        await gw.gateway.stop(grace=0)
    assert [r.status for r in await inbox_rows(app)] == ["received"]
    assert whatsapp.sent == []
    # the restarted process picks it up
    for _ in range(2):
        channel = MemoryChannel("whatsapp")
        async with running_gateway(app, channel, responder=responder) as gw:
            await gw.settle()
        if _ == 0:
            assert [s.text for s in channel.sent] == ["echo: are you there?"]
        else:
            assert channel.sent == []
    assert len(responder.calls) == 1
    assert [r.status for r in await inbox_rows(app)] == ["done"]


async def test_a_reply_recorded_but_not_sent_goes_out_once_after_a_restart(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await whatsapp.disconnect()
        await whatsapp.receive(OWNER, "hi")
        await gw.gateway.wait_idle(5)
        await gw.dispatchers["whatsapp"].flush()
    assert whatsapp.sent == []
    [row] = await outbox_rows(app)
    assert row.status == "pending" and row.attempts == 1
    channel = MemoryChannel("whatsapp")
    async with running_gateway(app, channel, responder=responder) as gw:
        await gw.settle()
        assert [s.text for s in channel.sent] == ["echo: hi"]
    assert len(responder.calls) == 1


async def test_replies_wait_while_disconnected_and_flush_in_order_on_reconnect(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await whatsapp.disconnect(detail="phone offline")
        for i in range(3):
            await whatsapp.receive(OWNER, f"m{i}")
        await gw.gateway.wait_idle(5)
        await gw.dispatchers["whatsapp"].flush()
        assert whatsapp.sent == []
        await whatsapp.reconnect()  # on_status connected: backoffs forgotten, flushed now
        await whatsapp.wait_sent(3)
        assert [s.text for s in whatsapp.sent] == ["echo: m0", "echo: m1", "echo: m2"]
    async with app.store.read() as conn:
        from polpo.store.tables import channel_state, events

        state = (await conn.execute(sa.select(channel_state.c.state))).scalar()
        types = [
            r[0] for r in (await conn.execute(sa.select(events.c.type).order_by(events.c.id))).all()
        ]
    assert state == "stopped" or state == "connected"
    assert "channel:disconnected" in types


async def test_a_failed_send_is_retried_after_its_backoff(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        whatsapp.fail_sends(1, retryable=True)
        await whatsapp.receive(OWNER, "first")
        await whatsapp.receive(OWNER, "second")
        await gw.gateway.wait_idle(5)
        dispatcher = gw.dispatchers["whatsapp"]
        await dispatcher.flush()
        assert whatsapp.sent == []  # "second" waits behind "first"
        clock.advance(1.5)
        await dispatcher.flush()
        assert [s.text for s in whatsapp.sent] == ["echo: first", "echo: second"]


async def test_a_permanent_failure_marks_the_row_failed_and_the_next_goes(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        whatsapp.fail_sends(1, retryable=False, message="chat not found")
        await whatsapp.receive(OWNER, "first")
        await whatsapp.receive(OWNER, "second")
        await gw.settle()
        assert [s.text for s in whatsapp.sent] == ["echo: second"]
    rows = await outbox_rows(app)
    assert [(r.status, r.error) for r in rows] == [("failed", "chat not found"), ("sent", None)]


async def test_long_replies_are_split_and_a_restart_resumes_after_the_parts_sent(
    open_project: OpenProject, responder: RecordingResponder
) -> None:
    app = await open_project()
    long = " ".join(f"Sentence number {i} is here." for i in range(40))
    responder.answer = lambda text: long
    channel = MemoryChannel("whatsapp", max_text_length=200)
    async with running_gateway(app, channel, responder=responder) as gw:
        channel.fail_sends(1)  # in order: the 1st part goes, then...
        original = channel.send
        calls = 0

        async def flaky(message):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 3:
                from polpo.errors import ChannelError

                raise ChannelError("dropped", retryable=True)
            return await original(message)

        channel._fail.clear()
        channel.send = flaky  # type: ignore[method-assign]
        await channel.receive(OWNER, "tell me a lot")
        await gw.gateway.wait_idle(5)
        await gw.dispatchers["whatsapp"].flush()
        assert len(channel.sent) == 2
        [row] = await outbox_rows(app)
        assert (row.status, row.parts_sent, row.channel_message_id) == (
            "pending",
            2,
            channel.sent[0].message_id,
        )
    again = MemoryChannel("whatsapp", max_text_length=200)
    async with running_gateway(app, again, responder=responder) as gw:
        await gw.settle()
    parts = [s.text for s in channel.sent] + [s.text for s in again.sent]
    assert all(len(p) <= 200 for p in parts)
    assert " ".join(parts).split() == long.split()


async def test_offline_catch_up_skips_stale_messages(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(offlineMaxAgeMinutes=30)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        old = clock.now() - 31 * 60
        assert await exchange(gw, whatsapp, OWNER, "old news", offline=True, timestamp=old) == []
        recent = clock.now() - 5 * 60
        assert await exchange(gw, whatsapp, OWNER, "recent", offline=True, timestamp=recent) == [
            "echo: recent"
        ]
    assert [m.text for m in whatsapp.read] == ["recent"]
    rows = await inbox_rows(app)
    assert [r.status for r in rows] == ["ignored", "done"]


async def test_media_edits_and_unknown_kinds(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        [media] = await exchange(gw, whatsapp, OWNER, "", kind="media")
        assert "text" in media.lower()
        assert await exchange(gw, whatsapp, OWNER, "fixed typo", kind="edit", target_id="x") == [
            "echo: fixed typo"
        ]
        assert await exchange(gw, whatsapp, OWNER, "", kind="unsupported") == []
        assert (
            await exchange(
                gw, whatsapp, OWNER, "", kind="reaction", reaction="🎉", target_id="nope"
            )
            == []
        )


async def test_thumbs_up_on_an_approval_alert_approves_it(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    from polpo.store.outbox import enqueue

    app = await open_project()
    task = await app.tasks.add("Ship it", agent="coder")
    approval = await app.approvals.request(task.id, gate="review", hook="task:complete")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        async with app.store.write() as conn:  # what the notifications send to admins
            await enqueue(
                conn,
                channel="whatsapp",
                chat_id=f"{OWNER}@s.whatsapp.net",
                text="Approve?",
                now=clock.now(),
                ref=f"approval:{approval.id}",
                dedupe_key="alert-1",
            )
        app.outbox_ready.set()
        [alert] = await whatsapp.wait_sent(1)
        # a stranger's thumbs up does nothing
        assert (
            await exchange(
                gw,
                whatsapp,
                "4915100001",
                "",
                kind="reaction",
                reaction="👍",
                target_id=alert.message_id,
            )
            == []
        )
        assert (await app.approvals.get(approval.id)).status == "pending"
        replies = await exchange(
            gw, whatsapp, OWNER, "", kind="reaction", reaction="👍", target_id=alert.message_id
        )
        assert len(replies) == 1
    decided = await app.approvals.get(approval.id)
    assert (decided.status, decided.resolved_by) == ("approved", OWNER_PEER)


async def test_peers_are_recorded_with_their_name_and_last_seen(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "hi", display_name="Anna")
        first = clock.now()
        clock.advance(100)
        await exchange(gw, whatsapp, OWNER, "hi again")
    async with app.store.read() as conn:
        row = (await conn.execute(sa.select(peers).where(peers.c.id == OWNER_PEER))).one()
    assert (row.display_name, row.first_seen, row.last_seen) == ("Anna", first, first + 100)


async def test_typing_is_shown_while_the_agent_works(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "hi")
        await exchange(gw, whatsapp, OWNER, "/help")
    chat = f"{OWNER}@s.whatsapp.net"
    assert whatsapp.typing_events == [(chat, True), (chat, False)]


async def test_inbox_rows_of_another_owner_are_left_alone(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    msg = whatsapp.message(OWNER, "for simulate")
    async with app.store.write() as conn:
        await conn.execute(
            inbox.insert().values(
                channel="whatsapp",
                message_id=msg.message_id,
                peer_id=OWNER_PEER,
                chat_id=msg.chat_id,
                text=msg.text,
                payload=msg.to_dict(),
                sent_at=clock.now(),
                received_at=clock.now(),
                status="received",
                owner="simulate:1",
            )
        )
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await gw.settle()
    assert whatsapp.sent == [] and responder.calls == []


class BrokenResponder(RecordingResponder):
    async def respond(self, *, peer_id: str, text: str, history: list[object]) -> ChatReply:
        if text == "boom":
            raise RuntimeError("a bug in the responder")
        return await super().respond(peer_id=peer_id, text=text, history=history)


async def test_a_bug_mid_turn_gets_a_short_apology_and_the_gateway_goes_on(
    open_project: OpenProject, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=BrokenResponder()) as gw:
        [apology] = await exchange(gw, whatsapp, OWNER, "boom")
        assert "sorry" in apology.lower()
        assert await exchange(gw, whatsapp, OWNER, "fine?") == ["echo: fine?"]
    assert [r.status for r in await inbox_rows(app)] == ["failed", "done"]
    assert whatsapp.typing_events[-3:] == [
        (f"{OWNER}@s.whatsapp.net", False),
        (f"{OWNER}@s.whatsapp.net", True),
        (f"{OWNER}@s.whatsapp.net", False),
    ]


async def test_malformed_fields_are_stored_and_never_crash(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    from polpo.channels.base import InboundMessage

    app = await open_project()
    odd = InboundMessage(
        channel="whatsapp",
        peer=OWNER,
        chat_id=None,  # type: ignore[arg-type]
        message_id="",
        text=None,  # type: ignore[arg-type]
        timestamp="yesterday",  # type: ignore[arg-type]
        kind=object(),  # type: ignore[arg-type]
        is_group="no",  # type: ignore[arg-type]
        display_name="\ud800broken",
    )
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await whatsapp.deliver(odd)
        await whatsapp.deliver(odd)  # no id: each delivery is its own message
        await gw.settle()
    rows = await inbox_rows(app)
    assert len(rows) == 2 and all(r.status == "ignored" for r in rows)
    assert responder.calls == []


async def test_replies_handed_to_the_dispatcher_go_out_once_even_with_flushes_racing(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(rateLimitPerMinute=0)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        dispatcher = gw.dispatchers["whatsapp"]
        stop = asyncio.Event()

        async def flushing() -> None:  # settle()-style passes that read the outbox
            while not stop.is_set():
                await dispatcher.flush()
                await asyncio.sleep(0)

        racer = asyncio.create_task(flushing())
        for i in range(30):
            await whatsapp.receive(OWNER, f"m{i}")
            for _ in range(i % 4):
                await asyncio.sleep(0)
        await gw.settle()
        stop.set()
        await racer
        await gw.settle()
    assert [s.text for s in whatsapp.sent] == [f"echo: m{i}" for i in range(30)]
    assert [r.status for r in await outbox_rows(app)] == ["sent"] * 30


async def test_a_row_enqueued_by_others_before_a_reply_goes_out_before_it(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    from polpo.gateway.dispatcher import OutboxDispatcher
    from polpo.gateway.pipeline import Gateway
    from polpo.store.outbox import enqueue

    app = await open_project()
    # no fan-out task: only app.outbox_ready tells the dispatcher about the alert
    gateway = Gateway(app, [whatsapp], responder=responder)
    dispatcher = OutboxDispatcher(app, whatsapp, batcher=gateway.batcher, poll_seconds=60)
    gateway.on_enqueued("whatsapp", dispatcher.wake)
    gateway.on_reply("whatsapp", dispatcher.hand_over)
    await gateway.start()
    await dispatcher.start()
    await whatsapp.start(gateway)
    try:
        await whatsapp.receive(OWNER, "one")
        await whatsapp.wait_sent(1)
        async with app.store.write() as conn:
            await enqueue(
                conn, channel="whatsapp", chat_id=whatsapp.sent[0].chat_id, text="alert", now=0.0
            )
        app.outbox_ready.set()
        await whatsapp.receive(OWNER, "two")
        await whatsapp.wait_sent(3)
    finally:
        await whatsapp.stop()
        await gateway.stop()
        await dispatcher.stop()
        await gateway.batcher.close()
    assert [s.text for s in whatsapp.sent] == ["echo: one", "alert", "echo: two"]
