"""One Bot API update → one channel-neutral :class:`InboundMessage`.

Ids are chosen so the gateway's de-duplication works across redeliveries:

- a message is ``"<chat id>:<message id>"`` (the same form :meth:`send`
  returns, so a reply quoting one of our alerts names it);
- an edit is ``"<chat id>:<message id>:edit:<update id>"`` with ``target_id``
  the edited message, so it is not mistaken for the original;
- a button press is ``"callback:<callback query id>"``.

Pure functions: no network, no clock of their own.
"""

from __future__ import annotations

import datetime as dt

from telegram import CallbackQuery, Chat, Message, TelegramObject, Update, User

from polpo.channels.base import Attachment, InboundMessage, MessageKind

CHANNEL = "telegram"


def message_ref(chat_id: int | str, message_id: int | str) -> str:
    return f"{chat_id}:{message_id}"


def parse_message_ref(ref: str) -> tuple[str, int] | None:
    """``"-100123:45"`` → (``"-100123"``, 45); anything else (``callback:…``) → None."""
    chat, sep, mid = ref.rpartition(":")
    if not sep or not chat or not mid.isdigit():
        return None
    if not chat.lstrip("-").isdigit():
        return None
    return chat, int(mid)


def display_name(user: User | None, chat: Chat | None = None) -> str | None:
    if user is not None:
        full = " ".join(p for p in (user.first_name, user.last_name) if p).strip()
        return full or user.username or None
    if chat is not None:
        return chat.title or chat.username or None
    return None


def inbound_from_update(update: Update, *, now: float) -> InboundMessage | None:
    """The message an update carries, or None for updates that are not messages.

    ``now`` stamps button presses, which carry no date of their own.
    """
    if update.callback_query is not None:
        return _from_callback(update.callback_query, now)
    for msg, edited in (
        (update.message, False),
        (update.edited_message, True),
        (update.channel_post, False),
        (update.edited_channel_post, True),
    ):
        if msg is not None:
            return _from_message(msg, edited=edited, update_id=update.update_id)
    return None


def _from_message(msg: Message, *, edited: bool, update_id: int) -> InboundMessage:
    chat = msg.chat
    chat_id = str(chat.id)
    user = msg.from_user
    if user is not None:
        peer, name = str(user.id), display_name(user)
    elif msg.sender_chat is not None:  # channel posts, anonymous group admins
        peer, name = str(msg.sender_chat.id), display_name(None, msg.sender_chat)
    else:
        peer, name = chat_id, display_name(None, chat)
    own_id = message_ref(chat_id, msg.message_id)
    quoted = msg.reply_to_message
    text = msg.text if msg.text is not None else (msg.caption or "")
    kind: MessageKind
    if edited:
        kind = "edit"
    elif msg.text is not None:
        kind = "text"
    elif msg.effective_attachment is not None:
        # A caption is text, as on WhatsApp; a bare photo or voice note is "media".
        kind = "text" if msg.caption else "media"
    else:  # service messages: members joined, pinned, …
        kind = "unsupported"
    when = msg.edit_date if edited and msg.edit_date is not None else msg.date
    return InboundMessage(
        channel=CHANNEL,
        peer=peer,
        chat_id=chat_id,
        message_id=f"{own_id}:edit:{update_id}" if edited else own_id,
        text=text,
        timestamp=when.timestamp(),
        display_name=name,
        is_group=chat.type != Chat.PRIVATE,
        quoted_id=message_ref(chat_id, quoted.message_id) if quoted is not None else None,
        kind=kind,
        target_id=own_id if edited else None,
        attachment=None if edited else attachment_of(msg),
    )


def attachment_of(msg: Message) -> Attachment | None:
    """The voice note, picture or file ``msg`` carries, described; ``ref`` is the
    ``file_id`` the channel fetches it by (only when the gateway asks)."""
    if msg.voice is not None:
        v = msg.voice
        return Attachment(
            "voice",
            v.mime_type or "audio/ogg",
            v.file_size or 0,
            _seconds(v),
            ref=v.file_id,
        )
    if msg.audio is not None:
        a = msg.audio
        return Attachment(
            "audio",
            a.mime_type or "audio/mpeg",
            a.file_size or 0,
            _seconds(a),
            a.file_name or "",
            ref=a.file_id,
        )
    if msg.photo:  # sizes of one picture: the largest (Telegram stores photos as JPEG)
        p = max(msg.photo, key=lambda size: size.width * size.height)
        return Attachment("image", "image/jpeg", p.file_size or 0, ref=p.file_id)
    if msg.document is not None:
        d = msg.document
        return Attachment(
            "document",
            d.mime_type or "application/octet-stream",
            d.file_size or 0,
            name=d.file_name or "",
            ref=d.file_id,
        )
    if msg.video is not None or msg.video_note is not None or msg.animation is not None:
        return Attachment("video")
    if msg.sticker is not None:
        return Attachment("sticker", "image/webp")
    return None


def _seconds(media: TelegramObject) -> int:
    """A voice note's or audio's length in whole seconds, as the Bot API sent it
    (read from the wire form: PTB's ``duration`` attribute warns of a type change)."""
    duration = media.to_dict().get("duration")
    if isinstance(duration, dt.timedelta):
        return int(duration.total_seconds())
    return duration if isinstance(duration, int) and not isinstance(duration, bool) else 0


def _from_callback(query: CallbackQuery, now: float) -> InboundMessage:
    """A press on one of our inline buttons: its data is the command it stands for."""
    pressed_on = query.message
    chat = pressed_on.chat if pressed_on is not None else None
    chat_id = str(chat.id) if chat is not None else str(query.from_user.id)
    return InboundMessage(
        channel=CHANNEL,
        peer=str(query.from_user.id),
        chat_id=chat_id,
        message_id=f"callback:{query.id}",
        text=query.data or "",
        timestamp=now,
        display_name=display_name(query.from_user),
        is_group=chat is not None and chat.type != Chat.PRIVATE,
        quoted_id=(message_ref(chat_id, pressed_on.message_id) if pressed_on is not None else None),
        kind="text" if query.data else "unsupported",
    )
