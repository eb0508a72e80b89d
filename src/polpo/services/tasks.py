"""Tasks: create, list, inspect, cancel, retry, and the moves the runner makes."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from polpo import ids
from polpo.core import states
from polpo.core.models import Task
from polpo.errors import InvalidTransitionError, NotFoundError, ValidationError
from polpo.services.context import ServiceContext, Tx
from polpo.store import records
from polpo.store.tables import approvals, tasks

MAX_TITLE = 200
MAX_DESCRIPTION = 20_000


def task_event(task: Task, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "taskId": task.id,
        "shortId": task.short_id,
        "title": task.title,
        "agent": task.agent,
        "missionId": task.mission_id,
        "status": task.status,
    }
    payload.update(extra)
    return payload


class TaskService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- reads ---------------------------------------------------------------

    async def get(self, ref: str) -> Task:
        async with self.ctx.read() as conn:
            return await records.find_task(conn, ref)

    async def list(
        self,
        *,
        status: Sequence[str] | None = None,
        mission: str | None = None,
        agent: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Task]:
        for s in status or ():
            if s not in states.TASK_STATUSES:
                raise ValidationError(
                    f"unknown task status {s!r}; use one of {', '.join(states.TASK_STATUSES)}"
                )
        async with self.ctx.read() as conn:
            mission_id = (await records.find_mission(conn, mission)).id if mission else None
            return await records.list_tasks(
                conn, status=status, mission_id=mission_id, agent=agent, limit=limit, offset=offset
            )

    async def count(self, *, status: Sequence[str] | None = None) -> int:
        async with self.ctx.read() as conn:
            return await records.count_tasks(conn, status=status)

    async def counts_by_status(self) -> dict[str, int]:
        async with self.ctx.read() as conn:
            return await records.task_counts_by_status(conn)

    # -- writes --------------------------------------------------------------

    async def add(
        self,
        title: str,
        *,
        description: str = "",
        agent: str | None = None,
        mission: str | None = None,
        depends_on: Sequence[str] = (),
        created_by: str = "cli",
    ) -> Task:
        title = " ".join(title.split())
        if not title:
            raise ValidationError("a task needs a title")
        if len(title) > MAX_TITLE:
            raise ValidationError(f"a task title may have at most {MAX_TITLE} characters")
        if len(description) > MAX_DESCRIPTION:
            raise ValidationError(
                f"a task description may have at most {MAX_DESCRIPTION} characters"
            )
        cfg = self.ctx.config
        if agent is not None and cfg.agent(agent) is None:
            known = ", ".join(a.name for a in cfg.agents) or "none are configured"
            raise ValidationError(f"unknown agent {agent!r}; agents: {known}")
        if agent is None and cfg.agents:
            agent = cfg.agents[0].name
        async with self.ctx.tx() as tx:
            mission_id = None
            position = 0
            if mission:
                m = await records.find_mission(tx.conn, mission)
                if m.status in ("completed", "cancelled"):
                    raise ValidationError(
                        f"mission {m.short_id} is {m.status}; it takes no new tasks"
                    )
                mission_id = m.id
                position = m.task_count
            deps: list[str] = []
            for ref in depends_on:
                try:
                    dep = await records.find_task(tx.conn, ref)
                except NotFoundError as e:
                    raise ValidationError(f"dependency: {e}") from e
                if dep.id not in deps:
                    deps.append(dep.id)
            return await self._insert(
                tx, title, description, agent, mission_id, position, deps, created_by
            )

    async def _insert(
        self,
        tx: Tx,
        title: str,
        description: str,
        agent: str | None,
        mission_id: str | None,
        position: int,
        deps: builtins.list[str],
        created_by: str,
    ) -> Task:
        task_id = ids.new_id()
        short = await records.new_short_id(tx.conn, tasks, task_id)
        await tx.conn.execute(
            tasks.insert().values(
                id=task_id,
                short_id=short,
                title=title,
                description=description,
                agent=agent,
                mission_id=mission_id,
                position=position,
                depends_on=deps,
                status="pending",
                feedback=[],
                created_by=created_by,
                created_at=tx.now,
                updated_at=tx.now,
            )
        )
        task = await records.get_task(tx.conn, task_id)
        await tx.emit("task:created", task_event(task, createdBy=created_by))
        return task

    async def cancel(self, ref: str, *, by: str = "cli", reason: str = "") -> Task:
        async with self.ctx.tx() as tx:
            task = await records.find_task(tx.conn, ref, lock=True)
            return await self.transition(tx, task, "cancelled", by=by, error=reason or None)

    async def retry(self, ref: str, *, by: str = "cli") -> Task:
        """Queue a failed task again (or a running one whose runner died: its lease ran out).

        A task that is still running under a live lease is refused, so a retry
        never starts a second copy of work in progress.
        """
        async with self.ctx.tx() as tx:
            task = await records.find_task(tx.conn, ref, lock=True)
            crashed = task.status == "running" and (
                task.lease_until is None or task.lease_until < tx.now
            )
            if task.status != "failed" and not crashed:
                raise InvalidTransitionError(
                    f"task {task.short_id} is {task.status}; only a failed task can be retried"
                )
            return await self.transition(
                tx, task, "pending", by=by, error=None, lease_owner=None, lease_until=None
            )

    async def transition(
        self, tx: Tx, task: Task, new: str, *, by: str = "", **values: Any
    ) -> Task:
        """Move ``task`` to ``new`` (checked), store ``values``, emit the event, roll up its mission."""
        states.check("task", task.status, new, task.short_id)
        if new != "awaiting_approval":
            values["awaiting"] = None
        if new == "running":
            values.setdefault("started_at", tx.now)
        if new in states.FINISHED_TASK:
            values.setdefault("finished_at", tx.now)
            values.setdefault("lease_owner", None)
            values.setdefault("lease_until", None)
        elif new == "pending":
            values.setdefault("finished_at", None)
        if not await records.move_task(
            tx.conn, task.id, task.status, status=new, updated_at=tx.now, **values
        ):
            # another process moved it since ``task`` was read: never overwrite that
            fresh = await records.get_task(tx.conn, task.id)
            raise InvalidTransitionError(
                f"task {task.short_id} is {fresh.status} now (it was {task.status} a moment "
                f"ago); it was not made {new}"
            )
        updated = await records.get_task(tx.conn, task.id)
        if new == "cancelled":
            await self._close_pending_approvals(tx, task.id, by)
        event = {
            "running": "task:started",
            "done": "task:done",
            "failed": "task:failed",
            "cancelled": "task:cancelled",
        }.get(new)
        if event:
            extra: dict[str, Any] = {"by": by} if by else {}
            if new == "failed" and updated.error:
                extra["error"] = updated.error
            await tx.emit(event, task_event(updated, **extra))
        if updated.mission_id:
            from polpo.services.missions import roll_up

            await roll_up(tx, updated.mission_id)
        return updated

    async def _close_pending_approvals(self, tx: Tx, task_id: str, by: str) -> None:
        await tx.conn.execute(
            approvals.update()
            .where(approvals.c.task_id == task_id, approvals.c.status == "pending")
            .values(
                status="expired",
                resolved_at=tx.now,
                resolved_by=by or "cancelled",
                feedback="task cancelled",
            )
        )
