"""One neonize ``MessageEv`` → one channel-neutral :class:`InboundMessage`, or None.

A pure function over the protobuf: no network, no clock (the caller passes
``now`` for the rare message without a timestamp), no neonize client. The
worker process calls it for every message event; tests feed it real neonize
protobuf objects.

What becomes what (SPEC §8):

- text from ``conversation``, ``extendedTextMessage.text`` or a media
  caption; the ephemeral, view-once (v1, v2, v2 extension),
  document-with-caption, edited-message and device-sent wrappers are
  unwrapped first, at any depth;
- an edit (``protocolMessage`` ``MESSAGE_EDIT``) is ``kind="edit"`` with the
  new text and ``target_id`` the edited message;
- a reaction is ``kind="reaction"`` with the emoji (``""`` when removed) and
  ``target_id``;
- media without a caption (image, video, audio, document, sticker, contact,
  location, …) is ``kind="media"`` with empty text; other message types the
  gateway cannot read are ``kind="unsupported"``;
- status updates (``status@broadcast``), broadcast lists and newsletters give
  None, as do protocol messages that are not edits (revokes, key shares,
  history-sync notices) and messages that carry nothing;
- a sender addressed by LID is resolved to a phone number through the
  message's alternate JID (``SenderAlt``), then ``resolve_lid`` (the
  library's LID→phone mapping); unresolved, the peer is ``lid:<lid>``.
  When both are known ``lid`` carries the LID so the gateway can merge;
- messages the gateway itself sent (``sent_ids``) give None, so the owner's
  self-chat never loops on Polpo's own replies.

:func:`normalize_undecryptable` reads an ``UndecryptableMessage`` the same way
(``kind="undecryptable"``, no text), so the gateway can ask an admitted
sender to send it again.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from neonize.proto.Neonize_pb2 import JID, UndecryptableMessage
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, ProtocolMessage

from polpo.channels.base import Attachment, InboundMessage, MediaKind, MessageKind

CHANNEL = "whatsapp"

PHONE_SERVERS = frozenset({"s.whatsapp.net", "c.us", "hosted"})
LID_SERVERS = frozenset({"lid", "hosted.lid"})
GROUP_SERVER = "g.us"
#: chats Polpo never answers: status updates, broadcast lists, newsletters (channels)
IGNORED_SERVERS = frozenset({"broadcast", "newsletter"})

#: wrappers whose ``.message`` is the real message (FutureProofMessage, DeviceSentMessage)
_WRAPPERS = (
    "deviceSentMessage",
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "botInvokeMessage",
    "associatedChildMessage",
    "groupMentionedMessage",
    "spoilerMessage",
)
_WRAPPER_SET = frozenset(_WRAPPERS)
#: the wrapper depth we follow; deeper nesting is not something WhatsApp sends
_MAX_DEPTH = 8

#: message types that are media (or another non-text attachment) with an optional caption
_CAPTIONED = ("imageMessage", "videoMessage", "documentMessage", "ptvMessage")
_MEDIA = frozenset(
    {
        *_CAPTIONED,
        "audioMessage",
        "stickerMessage",
        "lottieStickerMessage",
        "contactMessage",
        "contactsArrayMessage",
        "locationMessage",
        "liveLocationMessage",
        "stickerPackMessage",
        "albumMessage",
        "audioStickerMessage",
    }
)
#: fields that ride along with a message but are not one
_NOT_CONTENT = frozenset(
    {
        "messageContextInfo",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
    }
)

LidResolver = Callable[[str], "str | None"]


@dataclass(frozen=True)
class OwnAccount:
    """The linked account: its phone number (digits) and LID, when known."""

    phone: str | None = None
    lid: str | None = None


def jid_string(jid: JID) -> str:
    """``user@server`` without the device part (what a chat id is)."""
    if jid.User:
        return f"{jid.User}@{jid.Server}"
    return str(jid.Server)


def normalize(
    ev: MessageEv,
    *,
    own: OwnAccount | None = None,
    sent_ids: Container[str] = frozenset(),
    resolve_lid: LidResolver | None = None,
    now: float = 0.0,
) -> InboundMessage | None:
    """The message ``ev`` carries for the gateway, or None when it must be ignored."""
    info = ev.Info
    source = info.MessageSource
    chat = source.Chat
    if chat.Server in IGNORED_SERVERS or chat.User == "status":
        return None
    if source.BroadcastListOwner.User:
        return None
    message_id = info.ID
    if not message_id:
        return None
    from_me = source.IsFromMe
    if from_me and message_id in sent_ids:
        return None
    owner = own or OwnAccount()

    content = ev.Message if ev.HasField("Message") else ev.Raw
    parsed = _content(content)
    if parsed is None:
        return None
    kind, text, target_id, quoted_id, edit_stamp = parsed
    attachment = _attachment(content) if kind in ("text", "media") else None

    is_group = source.IsGroup or chat.Server == GROUP_SERVER
    sender = _sender_jid(source, is_group=is_group)
    peer, lid = _peer(sender, source.SenderAlt, owner, resolve_lid)
    if peer is None:
        return None
    if from_me and not is_group and owner.phone is not None and _is_id(owner.phone):
        peer, lid = owner.phone, owner.lid if _is_id(owner.lid) else None
    # The owner's "message yourself" chat, by number or by LID; for what the
    # owner sends, RecipientAlt is the chat's other address (a LID-addressed
    # self-chat is recognised by the number even when the own LID is unknown).
    self_chat = not is_group and (
        _is_own_chat(chat, owner) or (from_me and _is_own_chat(source.RecipientAlt, owner))
    )
    if self_chat and lid is None and chat.Server in LID_SERVERS and _is_id(chat.User):
        lid = chat.User

    if kind == "edit" and target_id == message_id:
        # Some clients reuse the edited message's id: keep the edit distinct from it.
        message_id = f"{message_id}:edit:{edit_stamp or info.Timestamp}"

    return InboundMessage(
        channel=CHANNEL,
        peer=peer,
        chat_id=jid_string(chat),
        message_id=message_id,
        text=text,
        timestamp=_seconds(info.Timestamp, now),
        display_name=info.Pushname or None,
        is_group=is_group,
        is_from_me=from_me,
        is_self_chat=self_chat,
        quoted_id=quoted_id,
        kind=kind,
        reaction=text if kind == "reaction" else None,
        target_id=target_id,
        lid=lid,
        attachment=attachment,
    )


def for_polpo(message: InboundMessage, *, groups: bool) -> bool:
    """Whether Polpo may keep ``message`` at all (SPEC §12: nothing that is not
    addressed to it is stored): not the owner's own messages to other people,
    not group messages unless groups are for Polpo (``groupPolicy`` open).
    Dropped in the worker, so they never reach the journal or the inbox."""
    if message.is_from_me and not message.is_self_chat:
        return False
    return groups or not message.is_group


def normalize_undecryptable(
    ev: UndecryptableMessage,
    *,
    own: OwnAccount | None = None,
    resolve_lid: LidResolver | None = None,
    now: float = 0.0,
) -> InboundMessage | None:
    """A message that failed to decrypt, as ``kind="undecryptable"``; None when the
    sender is not to be told: WhatsApp hides it anyway (``DECRYPT_FAIL_HIDE``:
    reactions, poll votes), this device was sent no ciphertext at all
    (whatsmeow asks the phone for it), it is the owner's own, or it is in a
    group, a status, a broadcast list or a newsletter."""
    if ev.DecryptFailMode == UndecryptableMessage.DECRYPT_FAIL_HIDE or ev.IsUnavailable:
        return None
    info = ev.Info
    source = info.MessageSource
    chat = source.Chat
    if chat.Server in IGNORED_SERVERS or chat.User == "status" or source.BroadcastListOwner.User:
        return None
    if source.IsFromMe or source.IsGroup or chat.Server == GROUP_SERVER or not info.ID:
        return None
    peer, lid = _peer(
        _sender_jid(source, is_group=False), source.SenderAlt, own or OwnAccount(), resolve_lid
    )
    if peer is None:
        return None
    return InboundMessage(
        channel=CHANNEL,
        peer=peer,
        chat_id=jid_string(chat),
        message_id=info.ID,
        text="",
        timestamp=_seconds(info.Timestamp, now),
        display_name=info.Pushname or None,
        kind="undecryptable",
        lid=lid,
    )


# -- content -------------------------------------------------------------------------

_Parsed = tuple[MessageKind, str, "str | None", "str | None", int]


def quotable(message: Message) -> Message:
    """``message`` as a reply quotes it (``ContextInfo.quotedMessage``): unwrapped,
    without the context (quote, mentions) of its own."""
    inner, present = _unwrap(message)
    copy = Message()
    copy.CopyFrom(inner)
    for name in present:
        sub: Any = getattr(copy, name, None)
        if sub is None or isinstance(sub, str | bytes | int | float):
            continue
        try:
            if sub.HasField("contextInfo"):
                sub.ClearField("contextInfo")
        except ValueError:  # this message type has no contextInfo
            continue
    for name in _NOT_CONTENT:
        copy.ClearField(name)
    return copy


def _unwrap(message: Message) -> tuple[Message, list[str]]:
    """The innermost message and the names of its fields that are set."""
    for _ in range(_MAX_DEPTH):
        present = [fd.name for fd, _ in message.ListFields()]
        for name in present:
            if name in _WRAPPER_SET:
                inner = getattr(message, name)
                if inner.HasField("message"):
                    message = inner.message
                    break
        else:
            return message, present
    return message, [fd.name for fd, _ in message.ListFields()]


def _content(message: Message) -> _Parsed | None:
    """(kind, text, target id, quoted id, edit timestamp) or None for non-messages."""
    message, present = _unwrap(message)
    if not present:
        return None
    if "conversation" in present:
        return "text", message.conversation, None, None, 0  # a quote makes it extended text
    if "extendedTextMessage" in present:
        ext = message.extendedTextMessage
        quoted = ext.contextInfo.stanzaID or None
        if ext.text:
            return "text", ext.text, None, quoted, 0
        return "unsupported", "", None, quoted, 0
    if "protocolMessage" in present:
        return _protocol(message.protocolMessage)
    if "reactionMessage" in present:
        reaction = message.reactionMessage
        return "reaction", reaction.text, reaction.key.ID or None, None, 0
    for name in _CAPTIONED:
        if name in present:
            media = getattr(message, name)
            caption: str = media.caption
            quoted = media.contextInfo.stanzaID or None
            return ("text" if caption else "media"), caption, None, quoted, 0
    content = [n for n in present if n not in _NOT_CONTENT]
    if not content:
        return None
    if any(n in _MEDIA for n in content):
        return "media", "", None, _quoted(message, content), 0
    return "unsupported", "", None, None, 0


#: message types that carry a file, and what kind of attachment each is
_ATTACHMENTS: dict[str, MediaKind] = {
    "audioMessage": "audio",
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}


def _attachment(message: Message) -> Attachment | None:
    """The voice note, picture or file ``message`` carries, described (not downloaded)."""
    if message.HasField("conversation") or message.HasField("extendedTextMessage"):
        return None
    inner, present = _unwrap(message)
    for name in present:
        kind = _ATTACHMENTS.get(name)
        if kind is None:
            continue
        media: Any = getattr(inner, name)
        if name == "audioMessage" and media.PTT:
            kind = "voice"
        return Attachment(
            kind=kind,
            mime=str(media.mimetype),
            size=max(0, int(media.fileLength)),
            seconds=int(getattr(media, "seconds", 0) or 0),
            name=str(getattr(media, "fileName", "") or ""),
        )
    return None


def declared_size(message: Message) -> int | None:
    """The size the sender declared for the file ``message`` carries; None: no file."""
    inner, present = _unwrap(message)
    for name in present:
        if name in _ATTACHMENTS:
            return max(0, int(getattr(inner, name).fileLength))
    return None


def _protocol(proto: ProtocolMessage) -> _Parsed | None:
    if proto.type != ProtocolMessage.MESSAGE_EDIT or not proto.HasField("editedMessage"):
        return None  # revokes, key shares, history-sync notices: not messages
    inner = _content(proto.editedMessage)
    if inner is None:
        return None
    _, text, _, quoted, _ = inner
    return "edit", text, proto.key.ID or None, quoted, proto.timestampMS


def _quoted(message: Message, names: list[str]) -> str | None:
    for name in names:
        sub: Any = getattr(message, name, None)
        if sub is None or isinstance(sub, str | bytes | int | float):
            continue
        try:
            if sub.HasField("contextInfo"):
                return sub.contextInfo.stanzaID or None
        except ValueError:  # this message type has no contextInfo
            continue
    return None


# -- people ------------------------------------------------------------------------------


def _sender_jid(source: Any, *, is_group: bool) -> JID:
    sender: JID = source.Sender
    if sender.User or is_group:
        return sender
    chat: JID = source.Chat
    return chat  # a direct message without a sender: the chat is the other person


def _peer(
    sender: JID, alt: JID, own: OwnAccount, resolve_lid: LidResolver | None
) -> tuple[str | None, str | None]:
    """(peer external id, LID when the phone number is also known)."""
    user, server = sender.User, sender.Server
    if not user.isdigit() or not user.isascii():
        return None, None  # not an id WhatsApp gives people; nothing to answer
    alt_user = alt.User if alt.User.isdigit() and alt.User.isascii() else ""
    if server in PHONE_SERVERS:
        lid = alt_user if alt.Server in LID_SERVERS and alt_user else None
        return user, lid
    if server in LID_SERVERS:
        if alt.Server in PHONE_SERVERS and alt_user:
            return alt_user, user
        if user == own.lid and own.phone and _is_id(own.phone):
            return own.phone, user
        phone = _resolve(resolve_lid, user)
        if phone:
            return phone, user
        return f"lid:{user}", None
    return None, None  # bots, interop and other servers Polpo cannot answer


def _is_id(value: str | None) -> bool:
    """Digits only: what WhatsApp phone numbers and LIDs are."""
    return value is not None and value.isdigit() and value.isascii()


def _resolve(resolve_lid: LidResolver | None, lid: str) -> str | None:
    if resolve_lid is None:
        return None
    try:
        phone = resolve_lid(lid)
    except Exception:  # the mapping is best effort; the message still goes through
        return None
    if not phone:
        return None
    phone = phone.split("@", 1)[0].split(":", 1)[0]
    return phone if phone.isdigit() and phone.isascii() else None


def _is_own_chat(chat: JID, own: OwnAccount) -> bool:
    if chat.Server in PHONE_SERVERS:
        return bool(own.phone) and chat.User == own.phone
    if chat.Server in LID_SERVERS:
        return bool(own.lid) and chat.User == own.lid
    return False


def _seconds(timestamp: int, now: float) -> float:
    """``MessageEv`` timestamps are milliseconds; a seconds value (older engines) is kept."""
    if timestamp <= 0:
        return now
    if timestamp >= 100_000_000_000:  # after 1973 in ms, year 5138 in s
        return timestamp / 1000.0
    return float(timestamp)
