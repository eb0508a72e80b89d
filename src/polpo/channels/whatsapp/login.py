"""Linking from the dashboard: the current QR code (or pairing code), and the login window.

While the account is not linked, ``polpo serve`` runs no worker until the
owner asks to link (mode ``idle``; :meth:`LoginState.request`: the
dashboard, ``POST /api/v1/channels/whatsapp/login``) or links it with
``polpo whatsapp login`` (the channel looks for the credentials every few
seconds). Asked, it runs the worker in login mode and shows its QR codes
(``status().extra["qr"]``; the API renders it as SVG). WhatsApp issues codes for about 160 s; a round lasts ``window`` seconds
at most, then the codes are marked ``expired`` and no new ones are asked for
until someone wants them (:meth:`LoginState.request`, the dashboard): asking
WhatsApp for codes for ever, with nobody looking, is pointless and may look
like abuse.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from polpo.channels.whatsapp.timing import Sleep

LOGIN_HINT = "run `polpo whatsapp login` to link WhatsApp"
SCAN_HINT = (
    "scan this QR code with WhatsApp on your phone: Settings → Linked devices → Link a device"
)
NOT_LINKED = (
    "WhatsApp is not linked yet: press “Link WhatsApp” on the dashboard for a QR code, "
    "or run `polpo whatsapp login`"
)
QR_EXPIRED = (
    "QR code expired — reload the dashboard (or press “New QR code”) to get a new one, "
    "or run `polpo whatsapp login`"
)
#: how long one login round shows QR codes (whatsmeow issues ~160 s of them)
LOGIN_WINDOW = 180.0

#: "idle": not linked, nobody asked to link yet; "qr": codes shown; "expired": they ran out
LoginMode = Literal["idle", "qr", "expired"]


@dataclass(frozen=True)
class LoginOptions:
    """How long a login round shows codes, and how often credentials are looked for."""

    window: float = LOGIN_WINDOW
    #: how often an idle or blocked channel looks again (credentials, the lock)
    poll_seconds: float = 5.0


class LoginState:
    """What the dashboard shows while the account is being linked."""

    def __init__(self) -> None:
        self.qr: str | None = None
        self.qr_expires_at: float | None = None
        self.pair_code: str | None = None
        #: see :data:`LoginMode` (None: linked, or about to show codes)
        self.mode: LoginMode | None = None
        self._wanted = asyncio.Event()

    def show_qr(self, code: str, expires_at: float) -> None:
        self.qr, self.qr_expires_at, self.mode = code, expires_at, "qr"

    def show_pair_code(self, code: str) -> None:
        self.pair_code = code

    def clear_codes(self) -> None:
        self.qr = self.qr_expires_at = self.pair_code = None

    def done(self) -> None:
        """Linked (or linked before): nothing to show."""
        self.clear_codes()
        self.mode = None

    def reset(self) -> None:
        """A new start: show new codes when not linked."""
        self.mode = None
        self._wanted.clear()

    def expire(self) -> None:
        self.clear_codes()
        self.mode = "expired"

    def idle(self) -> None:
        self.clear_codes()
        self.mode = "idle"

    @property
    def waiting(self) -> bool:
        """No codes are shown until someone asks (never asked, or they ran out)."""
        return self.mode in ("idle", "expired")

    def request(self) -> bool:
        """Ask for a round of codes; False when none is waited for (codes showing, linked)."""
        if not self.waiting:
            return False
        self._wanted.set()
        return True

    async def wait_for_request(self, seconds: float, sleep: Sleep) -> bool:
        """Wait ``seconds`` (on ``sleep``) or until :meth:`request`; True if asked."""
        if self._wanted.is_set():
            self._wanted.clear()
            return True
        asked = asyncio.create_task(self._wanted.wait())
        slept = asyncio.ensure_future(sleep(seconds))
        try:
            await asyncio.wait({asked, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (asked, slept):
                t.cancel()
            await asyncio.gather(asked, slept, return_exceptions=True)
        if self._wanted.is_set():
            self._wanted.clear()
            return True
        return False

    def status_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.qr is not None:
            extra["qr"] = self.qr
            if self.qr_expires_at is not None:
                extra["qrExpiresAt"] = self.qr_expires_at
        if self.mode is not None:
            extra["login"] = self.mode
        if self.pair_code is not None:
            extra["pairCode"] = self.pair_code
        return extra
