"""``GET /api/v1/tasks/{id}/runs``: what the runner recorded, over HTTP."""

from __future__ import annotations

import httpx

from polpo.app import Polpo
from polpo.runner import Runner


async def test_task_runs_over_http(api: httpx.AsyncClient, app: Polpo) -> None:
    task = await app.tasks.add("Docs", agent="coder")  # coder: test:model, review gate
    assert (await api.get(f"/tasks/{task.short_id}/runs")).json() == []
    runner = Runner(app)
    await runner.drain()
    runner.close()
    (run,) = (await api.get(f"/tasks/{task.short_id}/runs")).json()
    assert run["attempt"] == 1 and run["status"] == "done" and run["result"]
    assert run["transcript"][-1]["type"] == "usage"
    missing = await api.get("/tasks/zzzzzz/runs")
    assert missing.status_code == 404 and "error" in missing.json()
