"""``GET /api/v1/status``: the project at a glance (as ``/status`` and ``polpo status``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from polpo.api.deps import PolpoDep

router = APIRouter(tags=["status"])


@router.get("/status")
async def status(app: PolpoDep) -> dict[str, Any]:
    return (await app.status()).to_dict()
