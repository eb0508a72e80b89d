"""A move decided from a row read earlier never overwrites a move made since.

Another process (on PostgreSQL, where writers overlap) may have moved the
task or mission between the read and the write: the write names the status
it expects and is refused when the row has another.
"""

from __future__ import annotations

import pytest

from polpo.app import Polpo
from polpo.errors import InvalidTransitionError
from polpo.services.missions import PlannedTask, move_mission
from polpo.store import records


async def test_a_task_move_from_a_stale_read_is_refused_and_changes_nothing(app: Polpo) -> None:
    stale = await app.tasks.add("Write the parser", agent="coder")
    await app.tasks.cancel(stale.id, reason="not needed")  # "another process"
    with pytest.raises(InvalidTransitionError) as e:
        async with app.ctx.tx() as tx:
            await app.tasks.transition(tx, stale, "running", by="coder")
    assert e.value.message == (
        f"task {stale.short_id} is cancelled now (it was pending a moment ago); "
        "it was not made running"
    )
    task = await app.tasks.get(stale.id)
    assert (task.status, task.error) == ("cancelled", "not needed")


async def test_a_mission_move_from_a_stale_read_is_refused(app: Polpo) -> None:
    m = await app.missions.add("Docs", plan=[PlannedTask("Write")])
    async with app.ctx.read() as conn:
        stale = await records.get_mission(conn, m.id)
    await app.missions.start(m.id)
    with pytest.raises(InvalidTransitionError, match="is active now"):
        async with app.ctx.tx() as tx:
            await move_mission(tx, stale, "cancelled")
    assert (await app.missions.get(m.id)).status == "active"
