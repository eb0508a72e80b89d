"""Reading the runs of a task: attempts, outcome, timing and tool-call transcript."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from polpo.store import records
from polpo.store.tables import task_runs

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.core.models import Task


@dataclass(frozen=True)
class TaskRun:
    id: int
    task_id: str
    attempt: int
    status: str  # running | done | failed | interrupted | cancelled | discarded
    worker: str
    started_at: float
    finished_at: float | None
    result: str | None
    error: str | None
    transcript: list[dict[str, Any]]

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taskId": self.task_id,
            "attempt": self.attempt,
            "status": self.status,
            "worker": self.worker,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "seconds": self.seconds,
            "result": self.result,
            "error": self.error,
            "transcript": self.transcript,
        }


async def runs_of(app: Polpo, ref: str) -> tuple[Task, list[TaskRun]]:
    """A task (by id, short id or prefix) and its runs, oldest first."""
    async with app.store.read() as conn:
        task = await records.find_task(conn, ref)
        rows = (
            await conn.execute(
                sa.select(task_runs).where(task_runs.c.task_id == task.id).order_by(task_runs.c.id)
            )
        ).all()
    return task, [
        TaskRun(
            id=r.id,
            task_id=r.task_id,
            attempt=r.attempt,
            status=r.status,
            worker=r.worker,
            started_at=r.started_at,
            finished_at=r.finished_at,
            result=r.result,
            error=r.error,
            transcript=list(r.transcript or []),
        )
        for r in rows
    ]
