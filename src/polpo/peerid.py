"""Peer ids: ``channel:externalId``, and normalisation of what users type.

A WhatsApp peer is the phone number as digits only (E.164 without "+"):
``whatsapp:39123456789``. A Telegram peer is the numeric user id:
``telegram:123456789``. A WhatsApp sender whose phone number cannot be
resolved from a LID keeps ``whatsapp:lid:<lid>``.

Pure functions only: config validation, the gateway and the CLI share them.
"""

from __future__ import annotations

import re

CHANNEL_TYPES = ("whatsapp", "telegram", "memory")
WILDCARD = "*"

_PHONE_PUNCT = re.compile(r"[\s\-.()]")
_DIGITS = re.compile(r"^[0-9]{5,15}$")
_TG_ID = re.compile(r"^-?[0-9]{1,20}$")
_LID = re.compile(r"^[0-9]{1,25}$")


class PeerIdError(ValueError):
    """A string that cannot be read as a peer id of the expected channel."""


def normalize_phone(raw: str) -> str:
    """``+39 (123) 456-789`` / ``0039123456789`` / a JID → ``39123456789``.

    Raises :class:`PeerIdError` if what remains is not 5–15 digits.
    """
    s = raw.strip()
    if "@" in s:
        user, _, server = s.partition("@")
        if server not in ("s.whatsapp.net", "c.us"):
            raise PeerIdError(f"not a WhatsApp phone JID: {raw!r}")
        s = user.split(":", 1)[0]  # drop a ":device" suffix
    s = _PHONE_PUNCT.sub("", s)
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    if not _DIGITS.match(s):
        raise PeerIdError(f"not a phone number: {raw!r}")
    return s


def whatsapp_peer(phone_or_jid: str) -> str:
    return f"whatsapp:{normalize_phone(phone_or_jid)}"


def whatsapp_lid_peer(lid: str) -> str:
    user = lid.split("@", 1)[0].split(":", 1)[0]
    if not _LID.match(user):
        raise PeerIdError(f"not a WhatsApp LID: {lid!r}")
    return f"whatsapp:lid:{user}"


def telegram_peer(user_id: str | int) -> str:
    s = str(user_id).strip()
    if not _TG_ID.match(s):
        raise PeerIdError(f"not a Telegram user id: {user_id!r}")
    return f"telegram:{s}"


def split_peer(peer_id: str) -> tuple[str, str]:
    """``whatsapp:39123`` → (``whatsapp``, ``39123``)."""
    channel, sep, ext = peer_id.partition(":")
    if not sep or not ext:
        raise PeerIdError(f"not a peer id (expected channel:id): {peer_id!r}")
    return channel, ext


def normalize_peer(raw: str, default_channel: str | None = None) -> str:
    """Read a peer id as typed on the CLI or in config.

    Accepts ``whatsapp:+39 123…``, ``telegram:42``, a WhatsApp JID, or, when
    ``default_channel`` is given, a bare phone number / user id.
    """
    s = raw.strip()
    if not s:
        raise PeerIdError("empty peer id")
    if "@" in s and ":" not in s.split("@", 1)[0]:
        if s.endswith("@lid"):
            return whatsapp_lid_peer(s)
        return whatsapp_peer(s)
    channel, sep, ext = s.partition(":")
    if sep and channel in CHANNEL_TYPES:
        return _for_channel(channel, ext, raw)
    if sep and "@" in s:  # "39123:12@s.whatsapp.net" — a JID with a device suffix
        return whatsapp_peer(s)
    if default_channel is None:
        raise PeerIdError(f"not a peer id: {raw!r} (expected whatsapp:NUMBER or telegram:USER_ID)")
    return _for_channel(default_channel, s, raw)


def _for_channel(channel: str, ext: str, raw: str) -> str:
    if channel == "whatsapp":
        if ext.startswith("lid:"):
            return whatsapp_lid_peer(ext[4:])
        return whatsapp_peer(ext)
    if channel == "telegram":
        return telegram_peer(ext)
    if channel == "memory":
        if not ext.strip():
            raise PeerIdError(f"not a peer id: {raw!r}")
        return f"memory:{ext.strip()}"
    raise PeerIdError(f"unknown channel {channel!r} in {raw!r}")


def normalize_allow_entry(raw: str, channel: str) -> str:
    """Normalise one ``allowFrom`` entry of a channel's gateway.

    Returns ``"*"`` or a full peer id. Entries naming another channel
    (``telegram:42`` in the WhatsApp list) are kept as that channel's peer
    id: they apply to that channel.
    """
    s = raw.strip()
    if s == WILDCARD:
        return WILDCARD
    return normalize_peer(s, default_channel=channel)


#: The owner talking from ``polpo chat`` (a peer of the in-memory channel).
TERMINAL_OWNER = "memory:owner"


def display_peer(peer_id: str) -> str:
    """A human form: ``whatsapp:39123456789`` → ``+39123456789``; the ``polpo chat``
    owner → ``you (terminal)`` (its peer id means nothing to a reader)."""
    if peer_id == TERMINAL_OWNER:
        return "you (terminal)"
    try:
        channel, ext = split_peer(peer_id)
    except PeerIdError:
        return peer_id
    if channel == "whatsapp" and ext.isdigit():
        return f"+{ext}"
    return peer_id


def default_chat_id(peer_id: str) -> str:
    """Where a direct message to ``peer_id`` goes on its channel.

    WhatsApp: the user JID; Telegram: the user id (a private chat's id is the
    user's id); memory: the id itself.
    """
    channel, ext = split_peer(peer_id)
    if channel == "whatsapp":
        if ext.startswith("lid:"):
            return f"{ext[4:]}@lid"
        return f"{ext}@s.whatsapp.net"
    return ext
