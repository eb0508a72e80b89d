"""The real worker process over real pipes, with a scripted WhatsApp engine in place of
neonize's client (``fake_engine.py``): the journal across kills, what is kept at all."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from wa_support import HERE, make_credentials, poll_until

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.journal import JOURNAL_NAME
from polpo.channels.whatsapp.session import WorkerSession

ENGINE_WORKER = [sys.executable, str(HERE / "engine_worker.py")]
FRIEND = "39123456789"
ALICE = "39555000111"
GROUP = JID(User="120363000000000001", Server="g.us")
GROUP_JID = "120363000000000001@g.us"


def phone(user: str) -> JID:
    return JID(User=user, Server="s.whatsapp.net")


def message_ev(
    id: str, text: str, *, chat: JID, sender: JID | None = None, from_me: bool = False
) -> dict[str, Any]:
    ev = MessageEv(
        Info=MessageInfo(
            ID=id,
            Timestamp=1_800_000_000_000,
            Pushname="Ada",
            MessageSource=MessageSource(
                Chat=chat,
                Sender=sender or chat,
                IsFromMe=from_me,
                IsGroup=chat.Server == "g.us",
            ),
        ),
        Message=Message(conversation=text),
    )
    return {"event": "Message", "b64": base64.b64encode(ev.SerializePartialToString()).decode()}


def script(auth: Path, *steps: dict[str, Any]) -> None:
    (auth / "engine_script.json").write_text(json.dumps([{"event": "Connected"}, *steps]))


@pytest.fixture
def auth(tmp_path: Path) -> Path:
    d = tmp_path / "whatsapp"
    make_credentials(d)
    return d


def engine_log(auth: Path) -> list[dict[str, Any]]:
    path = auth / "engine_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def run_worker(
    auth: Path, *flags: str, want: int, ack: tuple[str, ...] = ()
) -> list[p.Event]:
    """Start the real worker, read until it connected and ``want`` messages came,
    send ``ack`` for some, then SIGKILL it (nothing orderly: as a crash would)."""
    session = WorkerSession(auth, [*ENGINE_WORKER, *flags])
    await session.start()
    seen: list[p.Event] = []
    try:
        await session.send(p.Connect())
        while len(received(seen)) < want or not any(isinstance(e, p.Connected) for e in seen):
            event = await session.next_event(20)
            assert event is not None, f"the worker exited; it said {seen}"
            seen.append(event)
        for message_id in ack:
            await session.send(p.Ack(message_id=message_id))
        # acks are taken on arrival, before this command runs: once the engine saw
        # the typing, the acks are in the journal
        marks = len([e for e in engine_log(auth) if e["type"] == "chat_presence"])
        await session.send(p.Typing(chat=f"{FRIEND}@s.whatsapp.net", on=True))
        await poll_until(
            lambda: len([e for e in engine_log(auth) if e["type"] == "chat_presence"]) > marks
        )
        assert session.proc is not None
        session.proc.kill()
    finally:
        await session.close()
    return seen


def received(events: list[p.Event]) -> list[str]:
    return [e.inbound().message_id for e in events if isinstance(e, p.MessageReceived)]


async def test_messages_not_acknowledged_are_replayed_by_the_next_worker(auth: Path) -> None:
    script(
        auth,
        message_ev("M1", "one", chat=phone(FRIEND)),
        message_ev("M2", "two", chat=phone(FRIEND)),
        message_ev("M3", "three", chat=phone(FRIEND)),
    )
    first = await run_worker(auth, want=3, ack=("M2",))
    assert received(first) == ["M1", "M2", "M3"]
    # WhatsApp does not send them again (whatsmeow receipted them): the engine is quiet now
    script(auth)
    second = await run_worker(auth, want=2, ack=("M1",))
    assert received(second) == ["M1", "M3"]  # replayed before anything new, in order
    third = await run_worker(auth, want=1)
    assert received(third) == ["M3"]
    replayed = next(e for e in third if isinstance(e, p.MessageReceived)).inbound()
    assert (replayed.peer, replayed.text) == (FRIEND, "three")


async def test_conversations_not_addressed_to_polpo_are_never_kept(auth: Path) -> None:
    script(
        auth,
        # the owner writing to someone else, from the phone
        message_ev(
            "OWN1", "secret plans", chat=phone(ALICE), sender=phone("39000000001"), from_me=True
        ),
        # a group (groupPolicy is not open)
        message_ev("G1", "group gossip", chat=GROUP, sender=phone(ALICE)),
        message_ev("M1", "for polpo", chat=phone(FRIEND)),
    )
    seen = await run_worker(auth, want=1)
    assert received(seen) == ["M1"]
    journal = (auth / JOURNAL_NAME).read_bytes()
    assert b"M1" in journal
    assert b"OWN1" not in journal and b"G1" not in journal
    # with groupPolicy open, the group message is for Polpo
    (auth / JOURNAL_NAME).unlink()
    seen = await run_worker(auth, "--groups", want=2)
    assert received(seen) == ["G1", "M1"]
    assert b"secret plans" not in (auth / JOURNAL_NAME).read_bytes()


async def test_presence_follows_the_connection(auth: Path) -> None:
    script(auth)
    session = WorkerSession(auth, ENGINE_WORKER)
    await session.start()
    await session.send(p.Connect())
    assert isinstance(await session.next_event(20), p.Connected)
    await session.close()  # a clean stop
    presences = [e["presence"] for e in engine_log(auth) if e["type"] == "presence"]
    assert presences == ["available", "unavailable"]
    assert engine_log(auth)[-1]["type"] == "disconnect"


async def test_replies_quote_the_message_they_answer_and_group_receipts_name_the_lid(
    auth: Path,
) -> None:
    lid = JID(User="123456789012345", Server="lid")
    group_ev = MessageEv(
        Info=MessageInfo(
            ID="G1",
            Timestamp=1_800_000_000_000,
            MessageSource=MessageSource(
                Chat=GROUP, Sender=lid, SenderAlt=phone(ALICE), IsGroup=True
            ),
        ),
        Message=Message(conversation="@polpo status?"),
    )
    script(
        auth,
        message_ev("M1", "/status please", chat=phone(FRIEND)),
        {"event": "Message", "b64": base64.b64encode(group_ev.SerializePartialToString()).decode()},
    )
    session = WorkerSession(auth, [*ENGINE_WORKER, "--groups"])
    await session.start()
    try:
        await session.send(p.Connect())
        seen: list[p.Event] = []
        while len(received(seen)) < 2:
            event = await session.next_event(20)
            assert event is not None
            seen.append(event)
        group = next(
            e.inbound() for e in seen if isinstance(e, p.MessageReceived) and e.inbound().is_group
        )
        assert (group.peer, group.lid) == (ALICE, "123456789012345")  # the number, for policy
        await session.send(
            p.SendText(ref="r1", chat=f"{FRIEND}@s.whatsapp.net", text="All fine.", reply_to="M1")
        )
        await session.send(
            p.SendText(ref="r2", chat=f"{FRIEND}@s.whatsapp.net", text="Plain.", reply_to="gone")
        )
        # what the channel sends for the group message: the peer's number, the read time
        await session.send(
            p.MarkRead(
                chat=GROUP_JID,
                sender=f"{ALICE}@s.whatsapp.net",
                message_ids=["G1"],
                timestamp=1_800_000_123,
            )
        )
        await poll_until(lambda: any(e["type"] == "mark_read" for e in engine_log(auth)))
    finally:
        await session.close()
    sends = [
        Message.FromString(base64.b64decode(e["message"]))
        for e in engine_log(auth)
        if e["type"] == "send"
    ]
    quoted = sends[0].extendedTextMessage
    assert quoted.text == "All fine."
    assert quoted.contextInfo.stanzaID == "M1"
    assert quoted.contextInfo.participant == f"{FRIEND}@s.whatsapp.net"
    assert quoted.contextInfo.quotedMessage.conversation == "/status please"
    assert sends[1].conversation == "Plain." and not sends[1].HasField("extendedTextMessage")
    (read,) = [e for e in engine_log(auth) if e["type"] == "mark_read"]
    # named by the address it wrote from (its LID), read now — not when it was sent
    assert read["sender"] == "123456789012345@lid"
    assert read["timestamp"] == 1_800_000_123
    assert read["chat"] == GROUP_JID


async def test_a_part_sent_again_with_its_id_after_a_crash_is_not_sent_twice(
    auth: Path,
) -> None:
    script(auth)
    sent_ids = []
    for _ in range(2):  # the second worker gets the same part again, as the outbox resends it
        session = WorkerSession(auth, ENGINE_WORKER)
        await session.start()
        try:
            await session.send(p.Connect())
            assert isinstance(await session.next_event(20), p.Connected)
            await session.send(
                p.SendText(
                    ref="r1",
                    chat=f"{FRIEND}@s.whatsapp.net",
                    text="Your task is done.",
                    message_id="3EB0A55167ED0000000001",
                )
            )
            sent = await session.next_event(20)
            assert isinstance(sent, p.Sent)
            sent_ids.append(sent.message_id)
            assert session.proc is not None
            session.proc.kill()  # a crash before anyone recorded the send
        finally:
            await session.close()
    assert sent_ids[0] == sent_ids[1]  # answered from the ledger: WhatsApp's id of the first
    sends = [e for e in engine_log(auth) if e["type"] == "send"]
    assert len(sends) == 1


async def test_an_admitted_voice_note_is_fetched_on_demand_and_bounded(auth: Path) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import AudioMessage

    voice = MessageEv(
        Info=MessageInfo(
            ID="V1",
            Timestamp=1_800_000_000_000,
            MessageSource=MessageSource(Chat=phone(FRIEND), Sender=phone(FRIEND)),
        ),
        Message=Message(
            audioMessage=AudioMessage(
                mimetype="audio/ogg; codecs=opus", fileLength=2_000, seconds=4, PTT=True
            )
        ),
    )
    script(
        auth,
        {"event": "Message", "b64": base64.b64encode(voice.SerializePartialToString()).decode()},
    )
    (auth / "engine_media.bin").write_bytes(b"OggS" + b"\x00" * 1996)
    media = auth.parent / "media"
    session = WorkerSession(auth, ENGINE_WORKER)
    await session.start()
    try:
        await session.send(p.Connect())
        seen: list[p.Event] = []
        while not received(seen):
            event = await session.next_event(20)
            assert event is not None
            seen.append(event)
        note = next(e.inbound() for e in seen if isinstance(e, p.MessageReceived))
        assert note.kind == "media" and note.attachment is not None
        assert (note.attachment.kind, note.attachment.seconds) == ("voice", 4)
        # nothing is downloaded until asked; too big is refused from the declared size
        await session.send(
            p.Download(ref="d1", message_id="V1", path=str(media / "a.ogg"), max_bytes=1_000)
        )
        too_big = await session.next_event(20)
        assert isinstance(too_big, p.Error) and too_big.ref == "d1" and "too big" in too_big.message
        assert not any(e["type"] == "download" for e in engine_log(auth))
        await session.send(
            p.Download(ref="d2", message_id="V1", path=str(media / "a.ogg"), max_bytes=10_000)
        )
        done = await session.next_event(20)
        assert done == p.Downloaded(ref="d2", path=str(media / "a.ogg"), size=2_000)
        await session.send(
            p.Download(ref="d3", message_id="never", path=str(media / "b.ogg"), max_bytes=10_000)
        )
        missing = await session.next_event(20)
        assert isinstance(missing, p.Error) and missing.ref == "d3"
    finally:
        await session.close()
    assert (media / "a.ogg").read_bytes().startswith(b"OggS")
    assert (media / "a.ogg").stat().st_mode & 0o777 == 0o600
