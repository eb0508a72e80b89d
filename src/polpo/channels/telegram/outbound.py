"""Shaping what we send: inline keyboards, and the plain-text fallback.

The gateway hands us text already in Telegram HTML and split to 4096
characters. Two things can still go wrong at Telegram's end, and neither may
lose the message: it rejects the HTML ("can't parse entities") — we resend
the same words without tags — or the text is too long after all — we resend
it as plain text in parts.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from polpo.channels.base import Button

log = logging.getLogger(__name__)

MAX_TEXT = 4096
#: Telegram's limit on an inline button's callback data, in bytes.
MAX_CALLBACK_DATA = 64
BUTTONS_PER_ROW = 3

_LINK = re.compile(r"<a\s[^<>]*?href\s*=\s*\"([^\"]*)\"[^<>]*>(.*?)</a\s*>", re.I | re.S)
_TAG = re.compile(
    r"</?(?:b|strong|i|em|u|ins|s|strike|del|span|tg-spoiler|tg-emoji|a|code|pre|blockquote)"
    r"(?:\s+[a-zA-Z-]+\s*=\s*\"[^\"<>]*\"|\s+expandable)*\s*/?>",
    re.I,
)


def html_to_plain(text: str) -> str:
    """Telegram HTML → the same words as plain text.

    Only Telegram's own tags are removed, so a stray ``a < b`` that made the
    HTML invalid survives; links keep their address: ``label (url)``.
    """

    def link(m: re.Match[str]) -> str:
        url, label = html.unescape(m.group(1)), m.group(2)
        plain_label = html.unescape(_TAG.sub("", label))
        return plain_label if plain_label.strip() == url.strip() else f"{label} ({url})"

    return html.unescape(_TAG.sub("", _LINK.sub(link, text)))


def inline_keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Buttons → an inline keyboard whose callback data is the command itself.

    A command longer than Telegram's 64 bytes cannot ride on a button; it is
    left out (the alert's text still says what to type).
    """
    fitting: list[InlineKeyboardButton] = []
    for b in buttons:
        if len(b.command.encode("utf-8")) > MAX_CALLBACK_DATA:
            log.warning("telegram: button %r left out: its command is over 64 bytes", b.label)
            continue
        fitting.append(InlineKeyboardButton(b.label, callback_data=b.command))
    if not fitting:
        return None
    rows = [fitting[i : i + BUTTONS_PER_ROW] for i in range(0, len(fitting), BUTTONS_PER_ROW)]
    return InlineKeyboardMarkup(rows)


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji may be 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_plain(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut plain text into parts of at most ``limit`` UTF-16 units, at line
    breaks, else spaces, else anywhere."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = max(1, _fit(rest, limit))
        window = rest[:cut]
        at = max(window.rfind("\n"), window.rfind(" "))
        if at > cut // 2:
            cut = at + 1
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    parts.append(rest)
    return [p for p in parts if p.strip()] or [text]


def _fit(text: str, limit: int) -> int:
    """The longest prefix (in code points) that fits in ``limit`` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)
