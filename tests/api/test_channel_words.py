"""Channel states in the owner's words (table-driven, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from polpo.api.channel_words import describe

OFFLINE = (
    "cannot get a QR code: cannot reach WhatsApp (lookup web.whatsapp.com on "
    "10.255.255.53:53: no such host); retrying in 11 s"
)


def words(state: str, detail: str | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "name": "whatsapp",
        "kind": "whatsapp",
        "account": None,
        "live": {},
        "updated_at": 1000.0,
    }
    args.update(kw)
    return describe(state=state, detail=detail, **args).to_dict()


@pytest.mark.parametrize(
    ("state", "detail", "extra", "summary", "tone", "technical"),
    [
        ("connected", None, {"account": "39123"}, "Connected as +39123.", "ok", None),
        (
            "waiting_for_login",
            OFFLINE,
            {},
            "Can't reach WhatsApp — check this machine's internet connection.",
            "wait",
            OFFLINE,
        ),
        (
            "disconnected",
            "dial tcp: i/o timeout; retrying in 2 s",
            {},
            "Can't reach WhatsApp — check this machine's internet connection.",
            "problem",
            "dial tcp: i/o timeout; retrying in 2 s",
        ),
        (
            "waiting_for_login",
            "scan this QR code with WhatsApp on your phone: Settings → Linked devices → "
            "Link a device (this code expires in 60 s)",
            {"qr": True},
            "Link WhatsApp. On your phone: WhatsApp → Settings → Linked devices → Link a "
            "device, then scan this code.",
            "wait",
            None,  # the instruction is said once, not twice
        ),
        (
            "waiting_for_login",
            "QR code expired — reload the dashboard",
            {"live": {"login": "expired"}},
            "The QR codes ran out. Press “New QR code” when your phone is at hand.",
            "wait",
            None,
        ),
        (
            "waiting_for_login",
            "linked to +39123; connecting",
            {},
            "Linked to +39123; connecting…",
            "wait",
            None,
        ),
        (
            "error",
            "held by pid 7 (polpo serve)",
            {"live": {"leaseHolder": "pid 7 on box2"}},
            "WhatsApp is in use by pid 7 on box2; waiting for it to let go.",
            "wait",
            "held by pid 7 (polpo serve)",
        ),
        (
            "logged_out",
            "WhatsApp logged this device out: run `polpo whatsapp login` to link WhatsApp",
            {},
            "WhatsApp logged this device out (it was unlinked on the phone). Link it again "
            "with `polpo whatsapp login`, or restart `polpo serve` for a new QR code.",
            "problem",
            "WhatsApp logged this device out: run `polpo whatsapp login` to link WhatsApp",
        ),
        (
            "connected",
            None,
            {"name": "tg", "kind": "telegram", "account": "@polpo_bot"},
            "Connected as @polpo_bot.",
            "ok",
            None,
        ),
    ],
)
def test_states_in_words(
    state: str,
    detail: str | None,
    extra: dict[str, Any],
    summary: str,
    tone: str,
    technical: str | None,
) -> None:
    got = words(state, detail, **extra)
    assert (got["summary"], got["tone"], got["technical"]) == (summary, tone, technical)


def test_retrying_in_becomes_a_time_to_count_down_to() -> None:
    assert words("waiting_for_login", OFFLINE, updated_at=1000.0)["retryAt"] == 1011.0
    assert words("waiting_for_login", OFFLINE, updated_at=None)["retryAt"] is None
    assert words("connected", None)["retryAt"] is None
