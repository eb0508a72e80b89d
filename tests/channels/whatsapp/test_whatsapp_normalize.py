"""Normalisation of real neonize protobuf objects (``MessageEv``, ``waE2E.Message``)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContextInfo,
    DeviceSentMessage,
    DocumentMessage,
    ExtendedTextMessage,
    FutureProofMessage,
    ImageMessage,
    Message,
    ProtocolMessage,
    ReactionMessage,
    StickerMessage,
    VideoMessage,
)

from polpo.channels.whatsapp.normalize import OwnAccount, normalize

OWN = OwnAccount(phone="39000000001", lid="900000000000001")
ALICE = "39123456789"
ALICE_LID = "123456789012345"
TS_MS = 1_800_000_000_123


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device)


def ev(
    message: Message | None = None,
    *,
    id: str = "3EB0A1",
    chat: JID | None = None,
    sender: JID | None = None,
    sender_alt: JID | None = None,
    from_me: bool = False,
    group: bool = False,
    push_name: str = "Alice",
    ts: int = TS_MS,
    **info: Any,
) -> MessageEv:
    chat = chat or jid(ALICE)
    source = MessageSource(
        Chat=chat,
        Sender=sender or chat,
        IsFromMe=from_me,
        IsGroup=group,
        SenderAlt=sender_alt,
        **info,
    )
    return MessageEv(
        Info=MessageInfo(ID=id, MessageSource=source, Pushname=push_name, Timestamp=ts),
        Message=message if message is not None else Message(conversation="ciao"),
    )


def text(s: str) -> Message:
    return Message(conversation=s)


# -- text ---------------------------------------------------------------------------


def test_plain_text_from_a_contact() -> None:
    m = normalize(ev(text("ciao Polpo")), own=OWN)
    assert m is not None
    assert (m.channel, m.peer, m.chat_id, m.message_id) == (
        "whatsapp",
        ALICE,
        f"{ALICE}@s.whatsapp.net",
        "3EB0A1",
    )
    assert (m.text, m.kind, m.display_name) == ("ciao Polpo", "text", "Alice")
    assert m.timestamp == 1_800_000_000.123  # MessageEv timestamps are milliseconds
    assert not (m.is_group or m.is_from_me or m.is_self_chat)


def test_extended_text_and_the_message_it_quotes() -> None:
    msg = Message(
        extendedTextMessage=ExtendedTextMessage(
            text="see https://example.com", contextInfo=ContextInfo(stanzaID="3EB0QUOTED")
        )
    )
    m = normalize(ev(msg), own=OWN)
    assert m is not None
    assert (m.text, m.kind, m.quoted_id) == ("see https://example.com", "text", "3EB0QUOTED")


def test_captions_are_text() -> None:
    for msg in (
        Message(imageMessage=ImageMessage(caption="a photo")),
        Message(videoMessage=VideoMessage(caption="a photo")),
        Message(documentMessage=DocumentMessage(caption="a photo", fileName="x.pdf")),
    ):
        m = normalize(ev(msg), own=OWN)
        assert m is not None and (m.text, m.kind) == ("a photo", "text")


def test_media_without_caption_is_flagged_media() -> None:
    for msg in (
        Message(imageMessage=ImageMessage(mimetype="image/jpeg")),
        Message(audioMessage=AudioMessage(seconds=3, PTT=True)),
        Message(stickerMessage=StickerMessage(mimetype="image/webp")),
        Message(documentMessage=DocumentMessage(fileName="a.pdf")),
    ):
        m = normalize(ev(msg), own=OWN)
        assert m is not None and (m.text, m.kind) == ("", "media")


# -- wrappers -------------------------------------------------------------------------


def test_each_wrapper_is_unwrapped() -> None:
    inner = text("inside")
    for wrapper in (
        "ephemeralMessage",
        "viewOnceMessage",
        "viewOnceMessageV2",
        "viewOnceMessageV2Extension",
    ):
        msg = Message(**{wrapper: FutureProofMessage(message=inner)})
        m = normalize(ev(msg), own=OWN)
        assert m is not None and (m.text, m.kind) == ("inside", "text"), wrapper


def test_view_once_photo_with_caption_inside_ephemeral() -> None:
    photo = Message(imageMessage=ImageMessage(caption="once"))
    msg = Message(
        ephemeralMessage=FutureProofMessage(
            message=Message(viewOnceMessageV2=FutureProofMessage(message=photo))
        )
    )
    m = normalize(ev(msg), own=OWN)
    assert m is not None and (m.text, m.kind) == ("once", "text")


def test_document_with_caption_wrapper() -> None:
    doc = Message(documentMessage=DocumentMessage(caption="the contract", fileName="c.pdf"))
    msg = Message(documentWithCaptionMessage=FutureProofMessage(message=doc))
    m = normalize(ev(msg), own=OWN)
    assert m is not None and (m.text, m.kind) == ("the contract", "text")


def test_message_sent_from_the_owners_other_device_is_unwrapped() -> None:
    msg = Message(
        deviceSentMessage=DeviceSentMessage(
            destinationJID=f"{ALICE}@s.whatsapp.net", message=text("from my phone")
        )
    )
    m = normalize(ev(msg, from_me=True, sender=jid(OWN.phone or "", device=0)), own=OWN)
    assert m is not None and m.text == "from my phone" and m.is_from_me


# -- edits and reactions ----------------------------------------------------------------


def _edit(new: Message, target: str = "3EB0ORIG") -> Message:
    return Message(
        protocolMessage=ProtocolMessage(
            type=ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", fromMe=False, ID=target),
            editedMessage=new,
            timestampMS=TS_MS + 5000,
        )
    )


def test_an_edit_is_taken_as_new_text_for_its_target() -> None:
    m = normalize(ev(_edit(text("fixed typo")), id="3EB0EDIT"), own=OWN)
    assert m is not None
    assert (m.kind, m.text, m.target_id, m.message_id) == (
        "edit",
        "fixed typo",
        "3EB0ORIG",
        "3EB0EDIT",
    )


def test_an_edit_in_the_edited_message_wrapper_and_with_the_originals_id() -> None:
    new = Message(extendedTextMessage=ExtendedTextMessage(text="v2"))
    msg = Message(editedMessage=FutureProofMessage(message=_edit(new, target="3EB0ORIG")))
    m = normalize(ev(msg, id="3EB0ORIG"), own=OWN)
    assert m is not None
    assert (m.kind, m.text, m.target_id) == ("edit", "v2", "3EB0ORIG")
    # not the original's id, or the gateway would drop it as a duplicate
    assert m.message_id == f"3EB0ORIG:edit:{TS_MS + 5000}"


def test_a_caption_edit() -> None:
    new = Message(imageMessage=ImageMessage(caption="new caption"))
    m = normalize(ev(_edit(new)), own=OWN)
    assert m is not None and (m.kind, m.text) == ("edit", "new caption")


def test_a_reaction_carries_the_emoji_and_its_target() -> None:
    msg = Message(
        reactionMessage=ReactionMessage(
            key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", fromMe=True, ID="3EB0ALERT"),
            text="👍",
            senderTimestampMS=TS_MS,
        )
    )
    m = normalize(ev(msg, id="3EB0REACT"), own=OWN)
    assert m is not None
    assert (m.kind, m.reaction, m.target_id, m.text, m.peer) == (
        "reaction",
        "👍",
        "3EB0ALERT",
        "👍",
        ALICE,
    )


def test_a_removed_reaction_has_an_empty_emoji() -> None:
    msg = Message(reactionMessage=ReactionMessage(key=MessageKey(ID="3EB0ALERT"), text=""))
    m = normalize(ev(msg), own=OWN)
    assert m is not None and (m.kind, m.reaction) == ("reaction", "")


def test_revokes_and_other_protocol_messages_are_not_messages() -> None:
    for kind in (ProtocolMessage.REVOKE, ProtocolMessage.HISTORY_SYNC_NOTIFICATION):
        msg = Message(protocolMessage=ProtocolMessage(type=kind, key=MessageKey(ID="X")))
        assert normalize(ev(msg), own=OWN) is None


# -- LIDs ----------------------------------------------------------------------------------


def test_lid_sender_resolved_through_the_alternate_jid() -> None:
    lid_chat = jid(ALICE_LID, "lid")
    m = normalize(ev(chat=lid_chat, sender=lid_chat, sender_alt=jid(ALICE)), own=OWN)
    assert m is not None
    assert (m.peer, m.lid, m.chat_id) == (ALICE, ALICE_LID, f"{ALICE_LID}@lid")


def test_lid_sender_resolved_through_the_librarys_mapping() -> None:
    lid_chat = jid(ALICE_LID, "lid")
    asked: list[str] = []

    def resolve(lid: str) -> str | None:
        asked.append(lid)
        return f"{ALICE}@s.whatsapp.net"

    m = normalize(ev(chat=lid_chat), own=OWN, resolve_lid=resolve)
    assert m is not None and (m.peer, m.lid) == (ALICE, ALICE_LID)
    assert asked == [ALICE_LID]


def test_unresolvable_lid_sender_is_kept_as_a_lid_peer() -> None:
    lid_chat = jid(ALICE_LID, "lid")
    for resolve in (None, lambda _lid: None, lambda _lid: "", _raises):
        m = normalize(ev(chat=lid_chat), own=OWN, resolve_lid=resolve)
        assert m is not None and (m.peer, m.lid) == (f"lid:{ALICE_LID}", None)


def _raises(_lid: str) -> str | None:
    raise RuntimeError("store closed")


def test_phone_sender_with_a_lid_alternate_reports_both() -> None:
    m = normalize(ev(sender_alt=jid(ALICE_LID, "lid")), own=OWN)
    assert m is not None and (m.peer, m.lid) == (ALICE, ALICE_LID)


# -- chats ---------------------------------------------------------------------------------


def test_group_message_is_flagged_with_the_participant_as_peer() -> None:
    group = jid("120363000000000001", "g.us")
    m = normalize(ev(chat=group, sender=jid(ALICE, device=12), group=True), own=OWN)
    assert m is not None
    assert (m.is_group, m.peer, m.chat_id) == (True, ALICE, "120363000000000001@g.us")


def test_status_broadcast_lists_and_newsletters_are_dropped() -> None:
    assert normalize(ev(chat=jid("status", "broadcast"), sender=jid(ALICE)), own=OWN) is None
    assert normalize(ev(chat=jid("1234567890", "broadcast"), sender=jid(ALICE)), own=OWN) is None
    assert normalize(ev(chat=jid("120363000000000002", "newsletter")), own=OWN) is None
    listed = ev(BroadcastListOwner=jid(ALICE))
    assert normalize(listed, own=OWN) is None


def test_own_message_to_someone_else_is_recognised() -> None:
    m = normalize(
        ev(text("on my way"), from_me=True, sender=jid(OWN.phone or "", device=3)), own=OWN
    )
    assert m is not None
    assert (m.is_from_me, m.is_self_chat, m.peer, m.chat_id) == (
        True,
        False,
        OWN.phone,
        f"{ALICE}@s.whatsapp.net",
    )


def test_self_chat_by_number_and_by_lid() -> None:
    me = jid(OWN.phone or "")
    m = normalize(
        ev(text("/status"), chat=me, sender=jid(OWN.phone or "", device=2), from_me=True), own=OWN
    )
    assert m is not None and m.is_self_chat and m.is_from_me and m.peer == OWN.phone
    me_lid = jid(OWN.lid or "", "lid")
    m = normalize(ev(text("/status"), chat=me_lid, sender=me_lid, from_me=True), own=OWN)
    assert m is not None and m.is_self_chat and m.peer == OWN.phone and m.lid == OWN.lid


def test_a_lid_addressed_self_chat_is_recognised_through_the_recipients_other_address() -> None:
    # the own LID is not known yet (an old device store), but the owner wrote to
    # a LID chat whose other address (RecipientAlt) is the owner's own number
    own = OwnAccount(phone=OWN.phone, lid=None)
    me_lid = jid("900000000000009", "lid")
    m = normalize(
        ev(
            text("/status"),
            chat=me_lid,
            sender=me_lid,
            from_me=True,
            RecipientAlt=jid(own.phone or ""),
        ),
        own=own,
    )
    assert m is not None and m.is_self_chat and m.peer == OWN.phone
    assert m.lid == "900000000000009"  # the gateway can merge the two addresses
    # the owner writing to someone else's LID chat is not a self-chat
    other = jid(ALICE_LID, "lid")
    m = normalize(
        ev(text("hi"), chat=other, sender=me_lid, from_me=True, RecipientAlt=jid(ALICE)), own=own
    )
    assert m is None or not m.is_self_chat


def test_the_gateways_own_sent_messages_never_come_back_as_input() -> None:
    me = jid(OWN.phone or "")
    echoed = ev(text("Here is the status…"), id="3EB0SENT", chat=me, from_me=True)
    assert normalize(echoed, own=OWN, sent_ids={"3EB0SENT"}) is None
    # the same id from someone else is not ours
    assert normalize(ev(id="3EB0SENT"), own=OWN, sent_ids={"3EB0SENT"}) is not None


def test_nothing_to_read_is_dropped_and_unknown_types_are_unsupported() -> None:
    assert normalize(ev(Message()), own=OWN) is None
    assert normalize(ev(id=""), own=OWN) is None
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import PollCreationMessage

    m = normalize(ev(Message(pollCreationMessage=PollCreationMessage(name="lunch?"))), own=OWN)
    assert m is not None and (m.kind, m.text) == ("unsupported", "")


def test_missing_timestamp_uses_now_and_second_timestamps_are_kept() -> None:
    m = normalize(ev(ts=0), own=OWN, now=42.0)
    assert m is not None and m.timestamp == 42.0
    m = normalize(ev(ts=1_800_000_000), own=OWN)
    assert m is not None and m.timestamp == 1_800_000_000.0


def test_the_raw_message_is_used_when_the_decoded_one_is_absent() -> None:
    e = MessageEv(Info=ev().Info, Raw=text("raw"))
    m = normalize(e, own=OWN)
    assert m is not None and m.text == "raw"


def test_a_message_that_went_through_the_wire_is_normalised_the_same() -> None:
    original = ev(_edit(text("v3")))
    again = MessageEv.FromString(original.SerializePartialToString())
    assert normalize(again, own=OWN) == normalize(original, own=OWN)


# -- never raises --------------------------------------------------------------------------

_users = st.sampled_from(["", ALICE, ALICE_LID, "status", "0", "x" * 40, "1:2", "🐙"]) | st.text(
    max_size=20
)
_servers = st.sampled_from(
    ["", "s.whatsapp.net", "lid", "g.us", "broadcast", "newsletter", "c.us", "hosted", "bot", "?"]
)
_jids = st.builds(JID, User=_users, Server=_servers, Device=st.integers(0, 99))
_leaf = st.one_of(
    st.builds(Message, conversation=st.text(max_size=50)),
    st.builds(
        lambda t, q: Message(
            extendedTextMessage=ExtendedTextMessage(text=t, contextInfo=ContextInfo(stanzaID=q))
        ),
        st.text(max_size=20),
        st.text(max_size=5),
    ),
    st.builds(lambda c: Message(imageMessage=ImageMessage(caption=c)), st.text(max_size=10)),
    st.builds(lambda c: Message(audioMessage=AudioMessage(seconds=c)), st.integers(0, 100)),
    st.builds(
        lambda t, i: Message(reactionMessage=ReactionMessage(text=t, key=MessageKey(ID=i))),
        st.text(max_size=3),
        st.text(max_size=5),
    ),
    st.builds(
        lambda ty, i: Message(protocolMessage=ProtocolMessage(type=ty, key=MessageKey(ID=i))),
        st.sampled_from(list(ProtocolMessage.Type.values())),
        st.text(max_size=5),
    ),
    st.just(Message()),
)
_wrappers = ["ephemeralMessage", "viewOnceMessage", "documentWithCaptionMessage", "editedMessage"]
_messages = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(
            lambda w, m: Message(**{w: FutureProofMessage(message=m)}),
            st.sampled_from(_wrappers),
            inner,
        ),
        st.builds(
            lambda m, i: Message(
                protocolMessage=ProtocolMessage(
                    type=ProtocolMessage.MESSAGE_EDIT, key=MessageKey(ID=i), editedMessage=m
                )
            ),
            inner,
            st.text(max_size=5),
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message=_messages,
    chat=_jids,
    sender=_jids,
    alt=_jids,
    from_me=st.booleans(),
    group=st.booleans(),
    ts=st.integers(-(2**63), 2**63 - 1),
    id=st.text(max_size=10),
    own_phone=st.none() | _users,
    own_lid=st.none() | _users,
)
def test_random_message_events_never_raise(
    message: Message,
    chat: JID,
    sender: JID,
    alt: JID,
    from_me: bool,
    group: bool,
    ts: int,
    id: str,
    own_phone: str | None,
    own_lid: str | None,
) -> None:
    e = MessageEv(
        Info=MessageInfo(
            ID=id,
            Timestamp=ts,
            MessageSource=MessageSource(
                Chat=chat, Sender=sender, SenderAlt=alt, IsFromMe=from_me, IsGroup=group
            ),
        ),
        Message=message,
    )
    m = normalize(e, own=OwnAccount(own_phone, own_lid), resolve_lid=lambda lid: lid)
    if m is not None:
        assert m.message_id and m.channel == "whatsapp"
        # always a peer the gateway can read: phone digits or lid:<digits>
        assert re.fullmatch(r"(lid:)?[0-9]+", m.peer), m.peer
        assert m.lid is None or re.fullmatch(r"[0-9]+", m.lid)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_that_parse_as_a_message_event_never_raise(data: bytes) -> None:
    from google.protobuf.message import DecodeError

    try:
        e = MessageEv.FromString(data)
    except DecodeError:
        return
    normalize(e, own=OWN, sent_ids={"x"})


# -- attachments ------------------------------------------------------------------------


def test_a_voice_note_a_picture_and_a_document_are_described_not_downloaded() -> None:
    from polpo.channels.base import Attachment

    voice = Message(
        audioMessage=AudioMessage(
            mimetype="audio/ogg; codecs=opus", fileLength=12_345, seconds=7, PTT=True
        )
    )
    m = normalize(ev(voice), own=OWN)
    assert m is not None and (m.kind, m.text) == ("media", "")
    assert m.attachment == Attachment("voice", "audio/ogg; codecs=opus", 12_345, 7)
    photo = Message(imageMessage=ImageMessage(caption="look", mimetype="image/jpeg", fileLength=99))
    m = normalize(ev(photo), own=OWN)
    assert m is not None and (m.kind, m.text) == ("text", "look")
    assert m.attachment == Attachment("image", "image/jpeg", 99)
    doc = Message(
        documentWithCaptionMessage=FutureProofMessage(
            message=Message(
                documentMessage=DocumentMessage(
                    fileName="plan.pdf", mimetype="application/pdf", fileLength=5
                )
            )
        )
    )
    m = normalize(ev(doc), own=OWN)
    assert m is not None and m.attachment == Attachment(
        "document", "application/pdf", 5, name="plan.pdf"
    )
    song = normalize(ev(Message(audioMessage=AudioMessage(mimetype="audio/mpeg"))), own=OWN)
    assert song is not None and song.attachment is not None and song.attachment.kind == "audio"
    plain = normalize(ev(text("no file")), own=OWN)
    assert plain is not None and plain.attachment is None
