"""``GET /api/v1/channels/stream``: the channel rows as Server-Sent Events, on change.

A channel's live status (its state, a rotating QR code, the account once
linked) is not in the event log: it lives in the channel object, and a new
QR code every 20-60 s would flood the log. So this stream looks at the rows
of ``GET /api/v1/channels`` every ``channel_poll_seconds`` (half a second)
and sends ``event: channels`` with all of them whenever something other than
the clock-driven fields changed. The dashboard follows it with an
``EventSource`` (its session cookie authenticates it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from polpo.api.deps import PolpoDep, RegistryDep
from polpo.api.routes.channels import channel_rows

router = APIRouter(tags=["channels"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
#: Fields that move with the clock alone: not a reason to send the rows again.
_CLOCK_FIELDS = ("serverTime", "qrExpiresIn")


def _fingerprint(rows: list[dict[str, Any]]) -> str:
    stable = [{k: v for k, v in r.items() if k not in _CLOCK_FIELDS} for r in rows]
    return json.dumps(stable, sort_keys=True, default=str)


@router.get(
    "/channels/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def channel_stream(
    request: Request, app: PolpoDep, registry: RegistryDep
) -> StreamingResponse:
    """The rows of ``GET /channels`` at once, then again each time they change."""
    poll: float = getattr(request.app.state, "channel_poll_seconds", POLL_SECONDS)
    stopping: asyncio.Event = getattr(request.app.state, "stopping", None) or asyncio.Event()

    async def stream() -> AsyncIterator[str]:
        last = None
        quiet = 0.0
        yield ": polpo channels\n\n"
        while not stopping.is_set():
            rows = await channel_rows(app, registry)
            mark = _fingerprint(rows)
            if mark != last:
                last, quiet = mark, 0.0
                data = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
                yield f"event: channels\ndata: {data}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=poll)
            quiet += poll
            if await request.is_disconnected():
                return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
