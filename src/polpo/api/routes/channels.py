"""``/api/v1/channels``: each channel's state, durable and live.

Durable rows (``channel_state``) are written by whichever process holds a
channel, so they are there even when this process runs none. Live status
comes from the channels ``polpo serve`` holds in ``host.registry["channels"]``
(a dict name → :class:`~polpo.channels.base.Channel`, or a list of them).

QR hook: a channel waiting to be linked puts the current QR payload in
``ChannelStatus.extra["qr"]``; ``GET /api/v1/channels/{name}/qr.svg`` renders
it and the dashboard shows it. Rows say ``qrVersion`` (changes when the code
rotates) and ``qrExpiresIn`` (seconds, for a countdown). When the codes ran
out (``live.login == "expired"``), ``POST /api/v1/channels/{name}/login``
asks the channel for new ones (the dashboard's "New QR code" button).

Each row also carries the state in the owner's words (``summary``, ``tone``,
``retryAt``, ``technical``: see :mod:`polpo.api.channel_words`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response

from polpo.api.channel_words import describe, platform
from polpo.api.deps import PolpoDep, RegistryDep
from polpo.app import Polpo
from polpo.channels.base import Channel, ChannelStatus
from polpo.errors import NotFoundError
from polpo.services.status import read_channel_states

router = APIRouter(tags=["channels"])
log = logging.getLogger(__name__)


def live_channels(registry: dict[str, Any]) -> dict[str, Channel]:
    held = registry.get("channels") or {}
    if isinstance(held, dict):
        return {str(k): v for k, v in held.items()}
    return {getattr(c, "name", str(i)): c for i, c in enumerate(held)}


def _live_status(channel: Channel) -> ChannelStatus | None:
    try:
        return channel.status()
    except Exception:  # a channel's bug must not break the listing
        log.exception("status() of channel %s failed", getattr(channel, "name", "?"))
        return None


def qr_version(payload: object) -> str:
    """A short fingerprint of the QR payload: the image URL changes when the code rotates."""
    import hashlib

    return hashlib.sha256(str(payload).encode()).hexdigest()[:12]


async def channel_rows(app: Polpo, registry: dict[str, Any]) -> list[dict[str, Any]]:
    """Each channel's row: durable state, live status of the channels served here, words."""
    now = app.clock.now()
    out: dict[str, dict[str, Any]] = {}
    for c in await read_channel_states(app.ctx):
        out[c.channel] = {**c.to_dict(), "live": None, "qr": False}
    for name, channel in live_channels(registry).items():
        st = _live_status(channel)
        if st is None:
            continue
        row = out.setdefault(
            name,
            {
                "channel": name,
                "state": st.state,
                "detail": None,
                "account": None,
                "updatedAt": None,
            },
        )
        row.update(state=st.state, detail=st.detail, account=st.account or row.get("account"))
        extra = {k: v for k, v in st.extra.items() if k != "qr"}
        row["live"] = {"state": st.state, "detail": st.detail, "account": st.account, **extra}
        payload = st.extra.get("qr")
        row["qr"] = bool(payload)
        if payload:
            row["qrVersion"] = qr_version(payload)
            expires = st.extra.get("qrExpiresAt")
            if isinstance(expires, int | float):
                row["qrExpiresIn"] = max(0, round(expires - now))
    kinds = {n: c.type for n, c in app.config.settings.notifications.channels.items()}
    for row in out.values():
        words = describe(
            name=row["channel"],
            kind=kinds.get(row["channel"]),
            state=row["state"],
            detail=row.get("detail"),
            account=row.get("account"),
            live=row.get("live"),
            updated_at=row.get("updatedAt"),
            qr=bool(row.get("qr")),
        )
        row.update(
            words.to_dict(),
            platform=platform(kinds.get(row["channel"]), row["channel"]),
            serverTime=now,
        )
    return [out[k] for k in sorted(out)]


@router.get("/channels")
async def list_channels(app: PolpoDep, registry: RegistryDep) -> list[dict[str, Any]]:
    return await channel_rows(app, registry)


@router.get("/channels/{name}/qr.svg", response_class=Response)
async def channel_qr(registry: RegistryDep, name: str) -> Response:
    channel = live_channels(registry).get(name)
    st = _live_status(channel) if channel is not None else None
    payload = st.extra.get("qr") if st is not None else None
    if not payload:
        raise NotFoundError(f"channel {name!r} has no QR code to scan right now")
    import io

    import segno

    buf = io.BytesIO()
    segno.make(str(payload), error="l").save(buf, kind="svg", scale=6, border=2)
    return Response(
        buf.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


@router.post("/channels/{name}/login")
async def channel_login(registry: RegistryDep, name: str) -> dict[str, Any]:
    """Ask a channel waiting to be linked for new QR codes (after they ran out)."""
    channel = live_channels(registry).get(name)
    if channel is None:
        raise NotFoundError(f"polpo serve runs no channel {name!r}")
    request = getattr(channel, "request_login", None)
    requested = bool(request()) if callable(request) else False
    st = _live_status(channel)
    return {
        "channel": name,
        "requested": requested,
        "state": st.state if st is not None else None,
        "detail": st.detail if st is not None else None,
    }
