"""The worker's translation of real neonize events into protocol events.

The neonize client is replaced by a stub at its narrowest seam (``get_me``,
``get_pn_from_lid``, ``send_message``, …): these run in-process, no network.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.Neonize_pb2 import (
    JID,
    ConnectFailure,
    ConnectFailureReason,
    Device,
    LoggedOut,
    MessageInfo,
    MessageSource,
    PairStatus,
    Receipt,
    SendResponse,
)
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp import worker as w


class Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class StubClient:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []
        self.fail_send: str | None = None
        self.disconnected = False

    def get_me(self) -> Device:
        return Device(
            JID=JID(User="39000000001", Server="s.whatsapp.net", Device=7),
            LID=JID(User="900001", Server="lid", Device=7),
            PushName="Owner",
        )

    def get_pn_from_lid(self, jid: JID) -> JID:
        return JID(User="39123456789", Server="s.whatsapp.net") if jid.User == "555" else JID()

    def send_message(self, to: JID, message: Message) -> SendResponse:
        if self.fail_send:
            raise RuntimeError(self.fail_send)
        self.sent.append((to, message))
        return SendResponse(ID="3EB0SENT1", Timestamp=1_800_000_000_000)

    def disconnect(self) -> None:
        self.disconnected = True

    def stop(self) -> None:
        pass


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> w.Worker:
    out = io.StringIO()
    wk = w.Worker(tmp_path / "wa", w.Output(out))
    wk.client = StubClient()
    wk.out_buffer = out  # type: ignore[attr-defined]

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(wk, "exit", fake_exit)
    return wk


def events(wk: w.Worker) -> list[p.Event]:
    text: str = wk.out_buffer.getvalue()  # type: ignore[attr-defined]
    return [p.decode_event(line) for line in text.splitlines()]


def test_connected_reports_the_linked_account(worker: w.Worker) -> None:
    worker.on_connected(worker.client, None)
    assert events(worker) == [
        p.Connected(
            phone="39000000001", jid="39000000001@s.whatsapp.net", lid="900001", push_name="Owner"
        )
    ]


def test_a_message_is_normalised_emitted_and_held_until_acked(worker: w.Worker) -> None:
    worker.on_connected(worker.client, None)
    lid = JID(User="555", Server="lid")
    ev = MessageEv(
        Info=MessageInfo(
            ID="3EB0IN",
            Timestamp=1_800_000_000_000,
            Pushname="Ada",
            MessageSource=MessageSource(Chat=lid, Sender=lid),
        ),
        Message=Message(conversation="ciao"),
    )
    handler = threading.Thread(target=worker.on_message, args=(worker.client, ev))
    handler.start()
    handler.join(0.2)
    assert handler.is_alive()  # waiting for the parent's ack
    worker.pending_acks["3EB0IN"].set()
    handler.join(5)
    assert not handler.is_alive()
    received = events(worker)[-1]
    assert isinstance(received, p.MessageReceived)
    m = received.inbound()
    # the LID resolved through the library's mapping
    assert (m.peer, m.lid, m.text, m.timestamp) == ("39123456789", "555", "ciao", 1_800_000_000.0)


def test_own_sent_messages_are_not_emitted(worker: w.Worker) -> None:
    worker.on_connected(worker.client, None)
    worker.send_text(p.SendText(ref="r1", chat="39000000001@s.whatsapp.net", text="hello me"))
    me = JID(User="39000000001", Server="s.whatsapp.net")
    echo = MessageEv(
        Info=MessageInfo(
            ID="3EB0SENT1", MessageSource=MessageSource(Chat=me, Sender=me, IsFromMe=True)
        ),
        Message=Message(conversation="hello me"),
    )
    worker.on_message(worker.client, echo)  # returns at once: nothing to wait for
    assert [type(e) for e in events(worker)] == [p.Connected, p.Sent]


def test_send_text_answers_with_the_message_id_or_an_error(worker: w.Worker) -> None:
    worker.send_text(p.SendText(ref="r1", chat="39123456789:3@s.whatsapp.net", text="*hi*"))
    to, message = worker.client.sent[0]
    assert (to.User, to.Server, message.conversation) == ("39123456789", "s.whatsapp.net", "*hi*")
    worker.client.fail_send = "websocket not connected"
    worker.send_text(p.SendText(ref="r2", chat="123@lid", text="x"))
    assert events(worker) == [
        p.Sent(ref="r1", message_id="3EB0SENT1", timestamp=1_800_000_000.0),
        p.Error(
            message="send failed: websocket not connected",
            ref="r2",
            code="send_failed",
            retryable=True,
        ),
    ]


def test_logged_out_and_refused_credentials_end_the_worker(worker: w.Worker) -> None:
    with pytest.raises(Exited) as info:
        worker.on_logged_out(
            worker.client, LoggedOut(OnConnect=True, Reason=ConnectFailureReason.LOGGED_OUT)
        )
    assert info.value.code == 0 and worker.client.disconnected
    with pytest.raises(Exited):
        worker.on_connect_failure(
            worker.client, ConnectFailure(Reason=ConnectFailureReason.MAIN_DEVICE_GONE, Message="")
        )
    assert events(worker) == [
        p.LoggedOut(reason="unlinked on WhatsApp (LOGGED_OUT)"),
        p.LoggedOut(reason="WhatsApp refused the credentials (MAIN_DEVICE_GONE)"),
    ]


def test_a_ban_is_fatal_and_other_failures_are_transient(worker: w.Worker) -> None:
    with pytest.raises(Exited) as info:
        worker.on_connect_failure(
            worker.client, ConnectFailure(Reason=ConnectFailureReason.TEMP_BANNED, Message="503")
        )
    assert info.value.code == w.EXIT_FATAL
    with pytest.raises(Exited) as info:
        worker.on_connect_failure(
            worker.client,
            ConnectFailure(Reason=ConnectFailureReason.SERVICE_UNAVAILABLE, Message="try later"),
        )
    assert info.value.code == w.EXIT_TRANSIENT
    first, second = events(worker)
    assert isinstance(first, p.Error) and first.fatal and not first.retryable
    assert isinstance(second, p.Error) and second.fatal and second.retryable
    assert second.message == "connection failed: SERVICE_UNAVAILABLE try later"


def test_pairing_and_receipts(worker: w.Worker) -> None:
    worker.on_pair_status(
        worker.client,
        PairStatus(ID=JID(User="39000000001", Server="s.whatsapp.net", Device=7), BusinessName=""),
    )
    chat = JID(User="39123456789", Server="s.whatsapp.net")
    worker.on_receipt(
        worker.client,
        Receipt(MessageSource=MessageSource(Chat=chat), MessageIDs=["a", "b"], Type=Receipt.READ),
    )
    assert events(worker) == [
        p.Paired(phone="39000000001", jid="39000000001@s.whatsapp.net", business_name=""),
        p.Receipt(chat="39123456789@s.whatsapp.net", message_ids=["a", "b"], kind="read"),
    ]


def test_qr_codes_carry_their_lifetimes(worker: w.Worker) -> None:
    worker.on_qr(worker.client, b"2@one")
    worker.on_qr(worker.client, b"2@two")
    assert events(worker) == [p.Qr(code="2@one", seconds=60), p.Qr(code="2@two", seconds=20)]


def test_bad_command_lines_are_answered_and_the_worker_goes_on(worker: w.Worker) -> None:
    stdin = io.BytesIO(b'{"type":"typing"}\n\n{"type":"ack","message_id":"x"}\n')
    worker.commands = __import__("queue").Queue()
    worker.read_commands(stdin)
    # stdin ended, so the command thread is handling a stop: let it finish while
    # exit is still the test's (the real one is os._exit, which would end pytest)
    worker.commands.put(None)
    for thread in threading.enumerate():
        if thread.name == "commands":
            thread.join(5)
            assert not thread.is_alive()
    first = events(worker)[0]
    assert isinstance(first, p.Error) and first.code == "bad_command"
    assert 'command "typing" is missing "chat"' in first.message
