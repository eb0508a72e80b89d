"""``/api/v1/missions``: list, create (with a plan), show (with tasks), start, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from polpo.api.deps import API_ACTOR, PolpoDep
from polpo.app import Polpo
from polpo.core.models import Mission
from polpo.core.plan import step_dependencies
from polpo.services.missions import PlannedTask

router = APIRouter(tags=["missions"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class PlanStep(_Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    agent: str | None = None
    #: indexes of earlier steps of the plan; omitted: the step before (see ``parallel``)
    depends_on: list[int] = Field(default_factory=list)


class MissionCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    goal: str = ""
    #: the plan, in order: titles, or steps with details
    tasks: list[str | PlanStep] = Field(default_factory=list)
    #: activate right away instead of leaving a draft
    start: bool = False
    #: steps without dependsOn wait for no other step (default: each waits for the one before)
    parallel: bool = False
    created_by: str = API_ACTOR


class MissionCancel(_Body):
    by: str = API_ACTOR


async def _with_tasks(app: Polpo, m: Mission) -> dict[str, Any]:
    tasks = await app.missions.tasks_of(m.id)
    return {**m.to_dict(), "tasks": [t.to_dict() for t in tasks]}


@router.get("/missions")
async def list_missions(
    app: PolpoDep,
    status: Annotated[list[str] | None, Query(description="Repeatable or comma-separated")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    statuses = [s for raw in status or [] for s in raw.split(",") if s] or None
    return [m.to_dict() for m in await app.missions.list(status=statuses, limit=limit)]


@router.post("/missions", status_code=201)
async def create_mission(app: PolpoDep, body: MissionCreate) -> dict[str, Any]:
    explicit = {
        i: s.depends_on
        for i, s in enumerate(body.tasks)
        if isinstance(s, PlanStep) and "depends_on" in s.model_fields_set
    }
    waits = step_dependencies(len(body.tasks), explicit, parallel=body.parallel)
    plan = [
        PlannedTask(title=s, depends_on=deps)
        if isinstance(s, str)
        else PlannedTask(title=s.title, description=s.description, agent=s.agent, depends_on=deps)
        for s, deps in zip(body.tasks, waits, strict=True)
    ]
    m = await app.missions.add(
        body.name, goal=body.goal, plan=plan, created_by=body.created_by, activate=body.start
    )
    return await _with_tasks(app, m)


@router.get("/missions/{ref}")
async def get_mission(app: PolpoDep, ref: str) -> dict[str, Any]:
    return await _with_tasks(app, await app.missions.get(ref))


@router.post("/missions/{ref}/start")
async def start_mission(app: PolpoDep, ref: str) -> dict[str, Any]:
    return await _with_tasks(app, await app.missions.start(ref))


@router.post("/missions/{ref}/cancel")
async def cancel_mission(
    app: PolpoDep, ref: str, body: MissionCancel | None = None
) -> dict[str, Any]:
    m = await app.missions.cancel(ref, by=(body or MissionCancel()).by)
    return await _with_tasks(app, m)
