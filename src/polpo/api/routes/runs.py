"""``/api/v1/tasks/{id}/runs``: each run of a task, with its tool-call transcript."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from polpo.api.deps import PolpoDep
from polpo.runner.runs import runs_of

router = APIRouter(tags=["tasks"])


@router.get("/tasks/{ref}/runs")
async def task_runs(app: PolpoDep, ref: str) -> list[dict[str, Any]]:
    """Oldest first: attempt, status, worker, timing, result or error, transcript."""
    _, runs = await runs_of(app, ref)
    return [r.to_dict() for r in runs]
