"""``/api/v1/approvals``: list, show, approve, reject (the same path as the CLI and chat)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from polpo.api.deps import API_ACTOR, PolpoDep

router = APIRouter(tags=["approvals"])


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the feedback the agent gets
    reason: str = Field(min_length=1, max_length=4000)
    by: str | None = None


@router.get("/approvals")
async def list_approvals(
    app: PolpoDep,
    status: Annotated[
        str,
        Query(
            description="pending (default), approved, rejected, expired, comma-separated, or all"
        ),
    ] = "pending",
    task: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    statuses = [s for s in status.split(",") if s]
    wanted = None if "all" in statuses else statuses
    return [a.to_dict() for a in await app.approvals.list(status=wanted, task=task, limit=limit)]


@router.get("/approvals/{ref}")
async def get_approval(app: PolpoDep, ref: str) -> dict[str, Any]:
    return (await app.approvals.get(ref)).to_dict()


@router.post("/approvals/{ref}/approve")
async def approve(app: PolpoDep, ref: str, body: ApproveBody | None = None) -> dict[str, Any]:
    by = (body.by if body else None) or API_ACTOR
    return (await app.approvals.approve(ref, by=by)).to_dict()


@router.post("/approvals/{ref}/reject")
async def reject(app: PolpoDep, ref: str, body: RejectBody) -> dict[str, Any]:
    return (
        await app.approvals.reject(ref, by=body.by or API_ACTOR, feedback=body.reason)
    ).to_dict()
