"""A channel's state in the owner's words, for the dashboard.

Channels report states and technical details (``lookup web.whatsapp.com on
…: no such host; retrying in 2.5 s``). The dashboard shows one sentence a
person acts on ("Can't reach WhatsApp — check this machine's internet
connection"), a live "retrying in" countdown, and the raw detail behind a
disclosure. The channels keep their own strings; this table reads them.
Command names are in backticks: the page renders them as code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Tone = Literal["ok", "wait", "problem"]

#: Details that mean the machine cannot reach the service at all.
_OFFLINE = re.compile(
    r"no such host|lookup \S+|network is unreachable|no route|name resolution|"
    r"name or service not known|cannot reach|dial tcp|i/o timeout|connection refused|"
    r"getaddrinfo|temporary failure",
    re.IGNORECASE,
)
_RETRY = re.compile(r"retrying in ([0-9]+(?:\.[0-9]+)?) s")
_LINKED = re.compile(r"linked to \+([0-9]+); connecting")

SCAN_STEPS = (
    "On your phone: WhatsApp → Settings → Linked devices → Link a device, then scan this code."
)


@dataclass(frozen=True)
class ChannelWords:
    #: one sentence to act on (commands in backticks)
    summary: str
    tone: Tone
    #: when the channel tries again (epoch seconds), for a live countdown
    retry_at: float | None
    #: the channel's own detail, shown behind a disclosure (None: nothing more to say)
    technical: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "tone": self.tone,
            "retryAt": self.retry_at,
            "technical": self.technical,
        }


def platform(kind: str | None, name: str) -> str:
    """ "WhatsApp" / "Telegram" from the channel's config type (or its name)."""
    k = (kind or name).lower()
    if "telegram" in k:
        return "Telegram"
    if "whatsapp" in k:
        return "WhatsApp"
    return name


def _account(kind: str, account: str | None) -> str:
    if not account:
        return ""
    return f"+{account}" if kind == "WhatsApp" and account.isdigit() else account


def describe(
    *,
    name: str,
    kind: str | None,
    state: str,
    detail: str | None,
    account: str | None,
    live: dict[str, Any] | None,
    updated_at: float | None,
    qr: bool = False,
) -> ChannelWords:
    """The words for one channel row of ``GET /api/v1/channels``."""
    who = platform(kind, name)
    extra = live or {}
    text = detail or ""
    offline = bool(_OFFLINE.search(text))
    retry = _RETRY.search(text)
    retry_at = updated_at + float(retry.group(1)) if retry and updated_at is not None else None
    technical: str | None = text or None

    def words(summary: str, tone: Tone, *, keep_detail: bool = True) -> ChannelWords:
        return ChannelWords(summary, tone, retry_at, technical if keep_detail else None)

    if offline and state not in ("connected", "stopped"):
        return words(
            f"Can't reach {who} — check this machine's internet connection.",
            "problem" if state != "waiting_for_login" else "wait",
        )
    if state == "connected":
        shown = _account(who, account)
        return words(f"Connected as {shown}." if shown else "Connected.", "ok")
    if state == "degraded":
        return words(f"Connected, but {who} is slow to answer: messages may be late.", "wait")
    if state in ("starting", "connecting"):
        return words("Connecting…", "wait", keep_detail=False)
    if state == "waiting_for_login":
        if qr:
            return words(f"Link {who}. {SCAN_STEPS}", "wait", keep_detail=False)
        if extra.get("pairCode"):
            return words(
                f"Enter the code {extra['pairCode']} on your phone: WhatsApp → Settings → "
                "Linked devices → Link a device → Link with phone number instead.",
                "wait",
                keep_detail=False,
            )
        if extra.get("login") == "expired":
            return words(
                "The QR codes ran out. Press “New QR code” when your phone is at hand.",
                "wait",
                keep_detail=False,
            )
        linked = _LINKED.search(text)
        if linked:
            return words(f"Linked to +{linked.group(1)}; connecting…", "wait", keep_detail=False)
        if "(polpo whatsapp login)" in text:
            return words("Being linked from the terminal (`polpo whatsapp login`).", "wait")
        if text.startswith("asking WhatsApp for a QR code"):
            return words(f"Asking {who} for a QR code…", "wait", keep_detail=False)
        return words(f"{who} is not linked yet.", "wait")
    if state == "disconnected":
        return words(f"Disconnected from {who}; reconnecting.", "problem")
    if state == "logged_out":
        return words(
            f"{who} logged this device out (it was unlinked on the phone). Link it again "
            "with `polpo whatsapp login`, or restart `polpo serve` for a new QR code.",
            "problem",
        )
    if state == "replaced":
        return words(
            f"Another {who} Web session took over this account; Polpo stopped rather than "
            "fight. Restart `polpo serve` to take it back.",
            "problem",
        )
    if state == "error":
        holder = extra.get("leaseHolder")
        if holder:
            return words(f"{who} is in use by {holder}; waiting for it to let go.", "wait")
        return words(f"{who} stopped with an error.", "problem")
    if state == "stopped":
        return words("Stopped.", "wait", keep_detail=False)
    return words(state.replace("_", " ").capitalize() + ".", "wait")
