"""Four ``polpo run`` processes drain one queue of 400 tasks: each task runs exactly once.

Claims take the row with ``FOR UPDATE SKIP LOCKED`` and recount the agent's
running tasks under a per-agent lock, so the agent's ``maxConcurrency``
holds over all the workers together, not per worker.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.config import load_config
from polpo.store.tables import task_runs
from tests.concurrency.workers import drain, run_processes
from tests.runner.conftest import write_config

TASKS = 400
WORKERS = 4
MAX_CONCURRENCY = 3


@pytest.mark.postgres_only(reason="several machines' workers share one PostgreSQL")
async def test_four_workers_run_each_of_400_tasks_exactly_once(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "proj",
        agents=[{"name": "coder", "role": "dev", "maxConcurrency": MAX_CONCURRENCY}],
    )
    app = await Polpo.open(load_config(path))
    try:
        ids = [(await app.tasks.add(f"Job {i}")).id for i in range(TASKS)]

        outcomes = run_processes(drain, [(str(path),)] * WORKERS, timeout=300)

        assert not [o for o in outcomes if o[0] == "crashed"], outcomes
        finished = [task_id for _, _, done, _ in outcomes for task_id in done]
        assert len(finished) == TASKS and set(finished) == set(ids)
        async with app.store.read() as conn:
            runs = (await conn.execute(sa.select(task_runs.c.task_id, task_runs.c.status))).all()
        assert collections.Counter(r.task_id for r in runs) == {t: 1 for t in ids}
        assert {r.status for r in runs} == {"done"}
        tasks = await app.tasks.list()
        assert len(tasks) == TASKS and {(t.status, t.attempts) for t in tasks} == {("done", 1)}
        assert len(outcomes) == WORKERS
        # never more of the agent's tasks running at once than its maxConcurrency
        assert max(peak for *_, peak in outcomes) <= MAX_CONCURRENCY
    finally:
        await app.close()
