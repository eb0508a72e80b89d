"""The last two tasks of a mission finishing at once in two processes complete the mission.

Each finish rolls the mission up from its tasks' states. Without a lock each
would read the other's task as still running (neither has committed) and the
mission would stay active for ever; the roll-up locks the mission's row
first, so the second waits for the first and then sees both tasks done.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.config import LoadedConfig
from polpo.services.missions import PlannedTask
from polpo.store import records

pytestmark = pytest.mark.postgres_only(reason="only PostgreSQL lets two writers overlap")


async def _finish(app: Polpo, task_id: str) -> None:
    async with app.ctx.tx() as tx:
        task = await records.get_task(tx.conn, task_id, lock=True)
        await app.tasks.transition(tx, task, "done", by="coder", result="ok")


async def _waiting_on_a_lock(app: Polpo, job: asyncio.Task[None]) -> None:
    """Until ``job`` is done or another session of this schema waits for a lock."""
    while not job.done():
        async with app.store.read() as conn:
            waiting = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE usename = current_user AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar()
        if waiting:
            return
        await asyncio.sleep(0.01)


async def test_two_last_tasks_finishing_at_once_complete_the_mission(
    app: Polpo, loaded: LoadedConfig
) -> None:
    m = await app.missions.add("Two", plan=[PlannedTask("A"), PlannedTask("B")], activate=True)
    for task_id in m.task_ids:
        async with app.ctx.tx() as tx:
            await app.tasks.transition(tx, await records.get_task(tx.conn, task_id), "running")
    other = await Polpo.open(loaded)  # a second process
    try:
        async with app.ctx.tx() as tx:
            first = await records.get_task(tx.conn, m.task_ids[0], lock=True)
            await app.tasks.transition(tx, first, "done", by="coder", result="ok")
            second = asyncio.create_task(_finish(other, m.task_ids[1]))
            await asyncio.wait_for(_waiting_on_a_lock(app, second), 10)
        await asyncio.wait_for(second, 10)
    finally:
        await other.close()
    assert (await app.missions.get(m.id)).status == "completed"
