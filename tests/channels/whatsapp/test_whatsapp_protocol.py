"""The worker protocol: every message round-trips; malformed lines are refused clearly."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polpo.channels.base import InboundMessage
from polpo.channels.whatsapp import protocol as p

INBOUND = InboundMessage(
    channel="whatsapp",
    peer="39123456789",
    chat_id="39123456789@s.whatsapp.net",
    message_id="3EB0ABC",
    text="ciao\nriga 2 “quote” 🐙",
    timestamp=1_800_000_000.5,
    display_name="Ada",
)

SAMPLES: list[Any] = [
    p.Connect(),
    p.Connect(phone="39123456789"),
    p.PairPhone(phone="39123456789"),
    p.SendText(ref="r1", chat="39123456789@s.whatsapp.net", text="hi\n*bold*", reply_to="X"),
    p.Typing(chat="39123456789@s.whatsapp.net", on=True),
    p.MarkRead(
        chat="c@s.whatsapp.net", sender="s@s.whatsapp.net", message_ids=["a", "b"], timestamp=1.5
    ),
    p.Ack(message_id="3EB0ABC"),
    p.Logout(ref="l1"),
    p.Stop(),
    p.Qr(code="2@abc,def", seconds=60),
    p.PairCode(code="ABCD-EFGH"),
    p.Paired(phone="39123456789", jid="39123456789:3@s.whatsapp.net"),
    p.Connected(
        phone="39123456789", jid="39123456789:3@s.whatsapp.net", lid="123", push_name="Ada"
    ),
    p.Disconnected(reason="keepalive timeout"),
    p.LoggedOut(reason="unlinked from the phone"),
    p.Replaced(),
    p.MessageReceived(message=INBOUND.to_dict()),
    p.Receipt(chat="c@s.whatsapp.net", message_ids=["a"], kind="read"),
    p.Sent(ref="r1", message_id="3EB0XYZ", timestamp=1_800_000_001.0),
    p.Error(message="boom", ref="r1", code="send_failed", retryable=False, fatal=False),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_every_message_round_trips_on_one_line(message: Any) -> None:
    line = p.encode(message)
    assert line.endswith("\n") and line.count("\n") == 1
    decode = p.decode_command if message.TYPE in p.COMMANDS else p.decode_event
    assert decode(line) == message
    assert decode(line.encode()) == message


def test_message_event_carries_the_inbound_message() -> None:
    event = p.decode_event(p.encode(p.MessageReceived(message=INBOUND.to_dict())))
    assert isinstance(event, p.MessageReceived)
    assert event.inbound() == INBOUND


def test_integer_timestamps_become_floats() -> None:
    data = INBOUND.to_dict() | {"timestamp": 1_800_000_000}
    event = p.decode_event(json.dumps({"type": "message", "message": data}))
    assert isinstance(event, p.MessageReceived)
    assert event.inbound().timestamp == 1_800_000_000.0
    assert isinstance(event.inbound().timestamp, float)


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    assert p.decode_event('{"type":"replaced","since":"v2"}') == p.Replaced()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "empty event line"),
        ("not json", "is not JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"code":"x"}', 'no "type"'),
        ('{"type":"bogus"}', 'unknown event type "bogus"'),
        ('{"type":"qr"}', 'event "qr" is missing "code"'),
        ('{"type":"qr","code":5}', '"code" must be a string'),
        ('{"type":"qr","code":"x","seconds":"20"}', '"seconds" must be an integer'),
        ('{"type":"qr","code":"x","seconds":true}', '"seconds" must be an integer'),
        (
            '{"type":"receipt","chat":"c","message_ids":"a"}',
            '"message_ids" must be a list of strings',
        ),
        (
            '{"type":"receipt","chat":"c","message_ids":[1]}',
            '"message_ids" must be a list of strings',
        ),
        ('{"type":"message","message":[]}', '"message" must be an object'),
        ('{"type":"message","message":{}}', 'missing "message.channel"'),
        ('{"type":"error","message":"x","fatal":"yes"}', '"fatal" must be a boolean'),
        ('{"type":"connected","phone":"1","lid":7}', '"lid" must be a string or null'),
    ],
)
def test_malformed_event_lines_are_refused_with_a_clear_error(line: str, says: str) -> None:
    with pytest.raises(p.ProtocolError, match=None) as info:
        p.decode_event(line)
    assert says in str(info.value)


def test_bad_inbound_fields_are_refused() -> None:
    for key, value, says in [
        ("timestamp", "now", '"message.timestamp" must be a number'),
        ("kind", "video", '"message.kind" must be one of'),
        ("is_group", 1, '"message.is_group" must be a boolean'),
        ("message_id", "", "is empty"),
    ]:
        data = INBOUND.to_dict() | {key: value}
        with pytest.raises(p.ProtocolError) as info:
            p.decode_event(json.dumps({"type": "message", "message": data}))
        assert says in str(info.value)


def test_commands_and_events_are_separate_vocabularies() -> None:
    with pytest.raises(p.ProtocolError, match='unknown command type "qr"'):
        p.decode_command(p.encode(p.Qr(code="x")))
    with pytest.raises(p.ProtocolError, match='unknown event type "stop"'):
        p.decode_event(p.encode(p.Stop()))


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(p.ProtocolError, match="not UTF-8"):
        p.decode_event(b'{"type":"replaced"}\xff\n')


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.binary(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_any_line_decodes_or_raises_protocol_error(line: str | bytes) -> None:
    for decode in (p.decode_event, p.decode_command):
        with contextlib.suppress(p.ProtocolError):
            decode(line)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(p.EVENTS)),
    st.dictionaries(
        st.sampled_from(
            [
                "code",
                "seconds",
                "phone",
                "message",
                "ref",
                "chat",
                "message_ids",
                "reason",
                "lid",
                "fatal",
            ]
        ),
        st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text()),
    ),
)
def test_typed_payloads_with_random_fields_decode_or_raise_protocol_error(
    kind: str, payload: dict[str, Any]
) -> None:
    with contextlib.suppress(p.ProtocolError):
        p.decode_event(json.dumps({"type": kind, **payload}))


def test_an_attachment_travels_with_its_message_and_a_bad_one_is_refused() -> None:
    from polpo.channels.base import Attachment, InboundMessage

    message = InboundMessage(
        channel="whatsapp",
        peer="39123456789",
        chat_id="39123456789@s.whatsapp.net",
        message_id="V1",
        text="",
        timestamp=1.0,
        kind="media",
        attachment=Attachment("voice", "audio/ogg", 10, 3),
    )
    line = p.encode(p.MessageReceived(message=p.inbound_to_wire(message)))
    back = p.decode_event(line)
    assert isinstance(back, p.MessageReceived) and back.inbound() == message
    assert InboundMessage.from_dict(message.to_dict()) == message  # as the inbox stores it
    bad = line.replace('"kind":"voice"', '"kind":"hologram"')
    with pytest.raises(p.ProtocolError, match="attachment"):
        p.decode_event(bad)
