"""The worker's translation of real neonize events into protocol events.

The neonize client is replaced by a stub at its narrowest seam (``get_me``,
``get_pn_from_lid``, ``send_message``, …): these run in-process, no network.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.Neonize_pb2 import (
    JID,
    ConnectFailure,
    ConnectFailureReason,
    Device,
    KeepAliveRestored,
    KeepAliveTimeout,
    LoggedOut,
    MessageInfo,
    MessageSource,
    PairStatus,
    Receipt,
    SendResponse,
    StreamError,
    UndecryptableMessage,
)
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp import worker as w
from polpo.channels.whatsapp.journal import JOURNAL_NAME, Journal
from polpo.gateway.routing import UNREADABLE_REPLY


class Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class StubClient:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []
        self.fail_send: str | None = None
        self.disconnected = False
        self.presences: list[str] = []

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

    def send_presence(self, presence: Any) -> None:
        self.presences.append(presence.value.decode())

    def disconnect(self) -> None:
        self.disconnected = True

    def stop(self) -> None:
        pass


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> w.Worker:
    out = io.StringIO()
    # A thread of the worker that writes after the test ended must not end pytest
    # (the real worker leaves with os._exit(0) when its parent is gone).
    wk = w.Worker(tmp_path / "wa", w.Output(out, on_gone=lambda: None))
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


def _lid_message(id: str = "3EB0IN", text: str = "ciao") -> MessageEv:
    lid = JID(User="555", Server="lid")
    return MessageEv(
        Info=MessageInfo(
            ID=id,
            Timestamp=1_800_000_000_000,
            Pushname="Ada",
            MessageSource=MessageSource(Chat=lid, Sender=lid),
        ),
        Message=Message(conversation=text),
    )


def test_a_message_is_journaled_then_handed_on_and_the_callback_never_waits(
    worker: w.Worker,
) -> None:
    worker.on_connected(worker.client, None)
    worker.open_journal()
    worker.on_message(worker.client, _lid_message())  # only queues: neonize is not held
    assert [type(e) for e in events(worker)] == [p.Connected]
    worker.drain()  # what the pump thread does
    received = events(worker)[-1]
    assert isinstance(received, p.MessageReceived)
    m = received.inbound()
    # the LID resolved through the library's mapping
    assert (m.peer, m.lid, m.text, m.timestamp) == ("39123456789", "555", "ciao", 1_800_000_000.0)
    assert worker.journal is not None
    (entry,) = Journal.open(worker.auth_dir / JOURNAL_NAME).unacked()
    assert entry.message_id == "3EB0IN" and p.decode_event(entry.line) == received
    assert MessageEv.FromString(entry.raw) == _lid_message()  # the raw event, as received


def test_the_parents_ack_trims_the_journal_and_a_new_worker_replays_the_rest(
    worker: w.Worker, tmp_path: Path
) -> None:
    worker.open_journal()
    for i in (1, 2, 3):
        worker.on_message(worker.client, _lid_message(f"M{i}", f"text {i}"))
    worker.drain()
    worker.read_commands(io.BytesIO(b'{"type":"ack","message_id":"M2"}\n'))
    worker.commands.put(None)  # end the command thread read_commands started
    # the worker is killed here; the next one replays what was never acknowledged
    out = io.StringIO()
    again = w.Worker(worker.auth_dir, w.Output(out, on_gone=lambda: None))
    again.open_journal()
    replayed = [p.decode_event(line) for line in out.getvalue().splitlines()]
    assert [e.inbound().message_id for e in replayed if isinstance(e, p.MessageReceived)] == [
        "M1",
        "M3",
    ]


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
    worker.on_message(worker.client, echo)
    worker.drain()
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
    # stdin ended, so the command thread got a stop; let it finish here, while
    # ``exit`` is still the fixture's (the real one would end pytest itself)
    worker.commands.put(None)
    assert worker.command_thread is not None
    worker.command_thread.join(10)
    assert not worker.command_thread.is_alive()
    first = events(worker)[0]
    assert isinstance(first, p.Error) and first.code == "bad_command"
    assert 'command "typing" is missing "chat"' in first.message


# -- connection truth ---------------------------------------------------------------------


def test_a_missed_keepalive_is_degraded_and_its_recovery_restores(worker: w.Worker) -> None:
    worker.on_keepalive_timeout(
        worker.client, KeepAliveTimeout(ErrorCount=2, LastSuccess=1_800_000_000)
    )
    worker.on_keepalive_restored(worker.client, KeepAliveRestored())
    degraded, restored = events(worker)
    assert isinstance(degraded, p.Degraded) and "missed 2 keepalive" in degraded.reason
    assert restored == p.Restored()  # not "disconnected": sends go on meanwhile


def test_presence_available_after_each_connect_and_unavailable_on_a_clean_stop(
    worker: w.Worker,
) -> None:
    worker.on_connected(worker.client, None)
    worker.on_disconnected(worker.client, None)
    worker.on_connected(worker.client, None)
    with pytest.raises(Exited) as info:
        worker.stop(0)
    assert info.value.code == 0
    assert worker.client.presences == ["available", "available", "unavailable"]


def test_no_goodbye_presence_when_logged_out_or_replaced(worker: w.Worker) -> None:
    worker.on_connected(worker.client, None)
    with pytest.raises(Exited):
        worker.on_replaced(worker.client, None)
    assert worker.client.presences == ["available"]


def test_an_unknown_stream_error_ends_the_worker_for_a_restart(worker: w.Worker) -> None:
    with pytest.raises(Exited) as info:
        worker.on_stream_error(worker.client, StreamError(Code="999"))
    assert info.value.code == w.EXIT_TRANSIENT
    (error,) = events(worker)
    assert isinstance(error, p.Error) and error.fatal and error.retryable
    assert error.message == "WhatsApp stream error 999; restarting"


def test_the_own_account_is_known_from_the_device_store_before_connected(
    tmp_path: Path,
) -> None:
    from wa_support import make_credentials

    auth = tmp_path / "wa"
    make_credentials(auth, phone="39000000001", lid="900001")
    out = io.StringIO()
    wk = w.Worker(auth, w.Output(out, on_gone=lambda: None))
    wk.client = StubClient()
    # offline catch-up: the owner's LID-addressed self-chat, before any Connected
    me = JID(User="900001", Server="lid", Device=3)
    wk.on_message(
        wk.client,
        MessageEv(
            Info=MessageInfo(
                ID="3EB0SELF", MessageSource=MessageSource(Chat=me, Sender=me, IsFromMe=True)
            ),
            Message=Message(conversation="/status"),
        ),
    )
    wk.drain()
    (received,) = [p.decode_event(line) for line in out.getvalue().splitlines()]
    assert isinstance(received, p.MessageReceived)
    m = received.inbound()
    assert m.is_self_chat and m.peer == "39000000001" and m.lid == "900001"


def test_qr_login_end_states_are_one_clear_line(worker: w.Worker) -> None:
    worker.on_login_status("success")
    worker.on_login_status("err-scanned-without-multidevice")
    with pytest.raises(Exited) as ran_out:
        worker.on_login_status("timeout")
    with pytest.raises(Exited) as outdated:
        worker.on_login_status("err-client-outdated")
    assert (ran_out.value.code, outdated.value.code) == (w.EXIT_TRANSIENT, w.EXIT_FATAL)
    multidevice, timeout, old = events(worker)
    assert isinstance(multidevice, p.Error) and not multidevice.fatal
    assert multidevice.code == "scanned_without_multidevice"
    assert "update WhatsApp on the phone" in multidevice.message
    assert isinstance(timeout, p.Error) and timeout.fatal and timeout.code == "qr_timeout"
    assert isinstance(old, p.Error) and not old.retryable and "upgrade neonize" in old.message


def test_neonizes_login_status_seam_reaches_the_worker(tmp_path: Path) -> None:
    """neonize only prints the QR channel's end state from ``__onLoginStatus``;
    ``make_client`` overrides it. If an upgrade renames it, this fails."""
    import inspect

    from neonize.client import NewClient

    assert "self.__onLoginStatus" in inspect.getsource(NewClient.connect_with_proxy)
    seen: list[str] = []
    client = w.make_client(tmp_path / "neonize.db", seen.append)
    client._NewClient__onLoginStatus(b"polpo", b"err-client-outdated")
    assert seen == ["err-client-outdated"]


def _undecryptable(
    sender: str = "39123456789", *, id: str = "3EB0BAD", **fields: Any
) -> UndecryptableMessage:
    jid = JID(User=sender, Server="s.whatsapp.net")
    return UndecryptableMessage(
        Info=MessageInfo(
            ID=id, Timestamp=1_800_000_000_000, MessageSource=MessageSource(Chat=jid, Sender=jid)
        ),
        **fields,
    )


def test_an_undecryptable_message_is_handed_on_once_per_sender(worker: w.Worker) -> None:
    worker.on_undecryptable(worker.client, _undecryptable(id="X1"))
    worker.on_undecryptable(worker.client, _undecryptable(id="X2"))  # still unreadable: once
    hidden = UndecryptableMessage.DECRYPT_FAIL_HIDE
    worker.on_undecryptable(worker.client, _undecryptable("39555", DecryptFailMode=hidden))
    worker.on_undecryptable(worker.client, _undecryptable("39666", IsUnavailable=True))
    sender = JID(User="39123456789", Server="s.whatsapp.net")
    readable = MessageEv(
        Info=MessageInfo(ID="OK1", MessageSource=MessageSource(Chat=sender, Sender=sender)),
        Message=Message(conversation="hi"),
    )
    worker.on_message(worker.client, readable)
    worker.on_undecryptable(worker.client, _undecryptable(id="X3"))  # a new failure: told again
    worker.drain()
    got = [e.inbound() for e in events(worker) if isinstance(e, p.MessageReceived)]
    assert [(m.message_id, m.kind) for m in got] == [
        ("X1", "undecryptable"),
        ("OK1", "text"),
        ("X3", "undecryptable"),
    ]
    assert got[0].peer == "39123456789" and got[0].text == ""
    assert "send it again" in UNREADABLE_REPLY
