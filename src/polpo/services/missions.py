"""Missions: a named goal and an ordered plan of tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from polpo import ids
from polpo.core import states
from polpo.core.models import Mission, Task
from polpo.errors import InvalidTransitionError, ValidationError
from polpo.services.context import ServiceContext, Tx
from polpo.store import records
from polpo.store.tables import missions, tasks


@dataclass(frozen=True)
class PlannedTask:
    """One task of a mission's plan; ``depends_on`` holds indexes of earlier plan steps."""

    title: str
    description: str = ""
    agent: str | None = None
    depends_on: tuple[int, ...] = ()


def mission_event(m: Mission) -> dict[str, object]:
    return {
        "missionId": m.id,
        "shortId": m.short_id,
        "name": m.name,
        "status": m.status,
        "progress": {"done": m.done_count, "total": m.task_count},
    }


class MissionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def get(self, ref: str) -> Mission:
        async with self.ctx.read() as conn:
            return await records.find_mission(conn, ref)

    async def tasks_of(self, ref: str) -> list[Task]:
        async with self.ctx.read() as conn:
            m = await records.find_mission(conn, ref)
            return await records.list_tasks(conn, mission_id=m.id)

    async def list(
        self, *, status: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Mission]:
        for s in status or ():
            if s not in states.MISSION_STATUSES:
                raise ValidationError(
                    f"unknown mission status {s!r}; use one of {', '.join(states.MISSION_STATUSES)}"
                )
        async with self.ctx.read() as conn:
            return await records.list_missions(conn, status=status, limit=limit)

    async def add(
        self,
        name: str,
        *,
        goal: str = "",
        plan: Sequence[PlannedTask] = (),
        created_by: str = "cli",
        activate: bool = False,
    ) -> Mission:
        """Create a mission (draft), optionally with its plan of tasks, optionally active."""
        from polpo.services.tasks import TaskService

        name = " ".join(name.split())
        if not name:
            raise ValidationError("a mission needs a name")
        if len(name) > 200:
            raise ValidationError("a mission name may have at most 200 characters")
        cfg = self.ctx.config
        for i, step in enumerate(plan):
            if step.agent is not None and cfg.agent(step.agent) is None:
                known = ", ".join(a.name for a in cfg.agents) or "none are configured"
                raise ValidationError(
                    f"task {i + 1}: unknown agent {step.agent!r}; agents: {known}"
                )
            for d in step.depends_on:
                if not 0 <= d < i:
                    raise ValidationError(
                        f"task {i + 1}: may only depend on earlier tasks of the plan"
                    )
            if not step.title.strip():
                raise ValidationError(f"task {i + 1}: a task needs a title")
        task_service = TaskService(self.ctx)
        async with self.ctx.tx() as tx:
            mission_id = ids.new_id()
            short = await records.new_short_id(tx.conn, missions, mission_id)
            await tx.conn.execute(
                missions.insert().values(
                    id=mission_id,
                    short_id=short,
                    name=name,
                    goal=goal,
                    status="draft",
                    created_by=created_by,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
            )
            created: list[Task] = []
            for i, step in enumerate(plan):
                agent = step.agent or (cfg.agents[0].name if cfg.agents else None)
                deps = [created[d].id for d in step.depends_on]
                created.append(
                    await task_service._insert(
                        tx,
                        " ".join(step.title.split()),
                        step.description,
                        agent,
                        mission_id,
                        i,
                        deps,
                        created_by,
                    )
                )
            mission = await records.get_mission(tx.conn, mission_id)
            await tx.emit("mission:created", mission_event(mission))
            if activate:
                mission = await self._move(tx, mission, "active")
            return mission

    async def start(self, ref: str) -> Mission:
        """Activate a draft (or failed) mission so the runner works on its tasks."""
        async with self.ctx.tx() as tx:
            m = await records.find_mission(tx.conn, ref)
            await lock_tasks_of(tx, m.id)
            m = await records.get_mission(tx.conn, m.id, lock=True)
            if m.task_count == 0:
                raise ValidationError(f"mission {m.short_id} has no tasks yet; add some first")
            if m.status == "failed":
                # retry the failed tasks
                from polpo.services.tasks import TaskService

                ts = TaskService(self.ctx)
                for t in await records.list_tasks(tx.conn, mission_id=m.id, status=["failed"]):
                    await ts.transition(tx, t, "pending", by="mission-retry", error=None)
                m = await records.get_mission(tx.conn, m.id)
            return await self._move(tx, m, "active")

    async def cancel(self, ref: str, *, by: str = "cli") -> Mission:
        from polpo.services.tasks import TaskService

        async with self.ctx.tx() as tx:
            m = await records.find_mission(tx.conn, ref)
            # its tasks first, then the mission: the order a task's move takes them in
            await lock_tasks_of(tx, m.id)
            m = await records.get_mission(tx.conn, m.id, lock=True)
            states.check("mission", m.status, "cancelled", m.short_id)
            m = await self._move(tx, m, "cancelled")
            ts = TaskService(self.ctx)
            for t in await records.list_tasks(
                tx.conn, mission_id=m.id, status=["pending", "awaiting_approval", "running"]
            ):
                await ts.transition(tx, t, "cancelled", by=by, error="mission cancelled")
            return await records.get_mission(tx.conn, m.id)

    async def _move(self, tx: Tx, m: Mission, new: str) -> Mission:
        return await move_mission(tx, m, new)


async def lock_tasks_of(tx: Tx, mission_id: str) -> None:
    """Lock a mission's task rows (in id order) before the mission's own row.

    Moving a task locks the task, then (rolling up) its mission; a mission-wide
    move takes them in the same order, so two processes never wait on each other
    in a circle.
    """
    await tx.conn.execute(
        sa.select(tasks.c.id)
        .where(tasks.c.mission_id == mission_id)
        .order_by(tasks.c.id)
        .with_for_update()
    )


async def move_mission(tx: Tx, m: Mission, new: str) -> Mission:
    states.check("mission", m.status, new, m.short_id)
    values: dict[str, object] = {"status": new, "updated_at": tx.now}
    if new in ("completed", "failed", "cancelled"):
        values["finished_at"] = tx.now
    res = await tx.conn.execute(
        sa.update(missions)
        .where(missions.c.id == m.id, missions.c.status == m.status)
        .values(**values)
    )
    if res.rowcount != 1:  # compare-and-set: another process moved it first
        fresh = await records.get_mission(tx.conn, m.id)
        raise InvalidTransitionError(
            f"mission {m.short_id} is {fresh.status} now (it was {m.status} a moment ago); "
            f"it was not made {new}"
        )
    m = await records.get_mission(tx.conn, m.id)
    event = {
        "active": "mission:started",
        "completed": "mission:completed",
        "failed": "mission:failed",
    }.get(new)
    if event:
        await tx.emit(event, mission_event(m))
    return m


async def roll_up(tx: Tx, mission_id: str) -> None:
    """After a task changes: complete or fail an active mission when its tasks say so.

    The mission's row is locked before its tasks are read: when two processes
    finish its last two tasks at once, the second waits and then sees the
    first's task finished too (otherwise each would see the other still running
    and the mission would stay active for ever).
    """
    m = await records.get_mission(tx.conn, mission_id, lock=True)
    if m.status != "active":
        return
    statuses = [
        r[0]
        for r in (
            await tx.conn.execute(sa.select(tasks.c.status).where(tasks.c.mission_id == mission_id))
        ).all()
    ]
    if not statuses:
        return
    if "failed" in statuses and all(s in states.FINISHED_TASK or s == "failed" for s in statuses):
        await move_mission(tx, m, "failed")
    elif all(s in states.TERMINAL_TASK for s in statuses):
        await move_mission(tx, m, "completed" if "done" in statuses else "cancelled")
