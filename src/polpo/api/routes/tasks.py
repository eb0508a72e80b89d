"""``/api/v1/tasks``: list, create, show, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from polpo.api.deps import API_ACTOR, PolpoDep

router = APIRouter(tags=["tasks"])

#: Bounded so a huge value is a 422, not an overflow in the database (a 500).
MAX_OFFSET = 1_000_000_000


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    agent: str | None = None
    #: mission id, short id or prefix
    mission: str | None = None
    #: task ids, short ids or prefixes
    depends_on: list[str] = Field(default_factory=list)
    created_by: str = API_ACTOR


class TaskCancel(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    reason: str = ""
    by: str = API_ACTOR


class TaskRetry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = API_ACTOR


@router.get("/tasks")
async def list_tasks(
    app: PolpoDep,
    status: Annotated[list[str] | None, Query(description="Repeatable or comma-separated")] = None,
    mission: str | None = None,
    agent: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    statuses = [s for raw in status or [] for s in raw.split(",") if s] or None
    tasks = await app.tasks.list(
        status=statuses, mission=mission, agent=agent, limit=limit, offset=offset
    )
    return [t.to_dict() for t in tasks]


@router.post("/tasks", status_code=201)
async def create_task(app: PolpoDep, body: TaskCreate) -> dict[str, Any]:
    task = await app.tasks.add(
        body.title,
        description=body.description,
        agent=body.agent,
        mission=body.mission,
        depends_on=body.depends_on,
        created_by=body.created_by,
    )
    return task.to_dict()


@router.get("/tasks/{ref}")
async def get_task(app: PolpoDep, ref: str) -> dict[str, Any]:
    task = await app.tasks.get(ref)
    approvals = await app.approvals.list(status=None, task=task.id)
    return {**task.to_dict(), "approvals": [a.to_dict() for a in approvals]}


@router.post("/tasks/{ref}/cancel")
async def cancel_task(app: PolpoDep, ref: str, body: TaskCancel | None = None) -> dict[str, Any]:
    body = body or TaskCancel()
    return (await app.tasks.cancel(ref, by=body.by, reason=body.reason)).to_dict()


@router.post("/tasks/{ref}/retry")
async def retry_task(app: PolpoDep, ref: str, body: TaskRetry | None = None) -> dict[str, Any]:
    return (await app.tasks.retry(ref, by=(body or TaskRetry()).by)).to_dict()
