"""``GET /api/v1/health``: is it up, which project, how long (no API key needed)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from polpo import __version__
from polpo.api.deps import PolpoDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, app: PolpoDep) -> dict[str, Any]:
    """Uptime is seconds since the API was created (``polpo serve`` start)."""
    started: float = request.app.state.started_at
    return {
        "ok": True,
        "project": app.config.project,
        "version": __version__,
        "uptime": round(time.monotonic() - started, 3),
    }
