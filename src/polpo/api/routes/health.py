"""``GET /api/v1/health``: is it up, which project, how long (no API key needed)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from polpo import __version__
from polpo.api.deps import PolpoDep

router = APIRouter(tags=["health"])

_STARTED = time.monotonic()


@router.get("/health")
async def health(app: PolpoDep) -> dict[str, Any]:
    return {
        "ok": True,
        "project": app.config.project,
        "version": __version__,
        "uptime": round(time.monotonic() - _STARTED, 3),
    }
