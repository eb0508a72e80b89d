"""``GET /api/v1/agents``: agents from config, active or idle."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from polpo.api.deps import PolpoDep

router = APIRouter(tags=["agents"])


@router.get("/agents")
async def list_agents(app: PolpoDep) -> list[dict[str, Any]]:
    return [a.to_dict() for a in await app.agents.list()]
