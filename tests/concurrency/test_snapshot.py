"""A read transaction sees one snapshot: a commit elsewhere halfway through is not mixed in.

``/status`` counts tasks, approvals and peers in several statements; on
PostgreSQL they run at REPEATABLE READ (SQLite's WAL gives the same), so
the counts always belong to one moment.
"""

from __future__ import annotations

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.config import LoadedConfig
from polpo.store import status as status_store
from polpo.store.tables import tasks


async def test_a_read_keeps_its_snapshot_while_another_process_commits(
    app: Polpo, loaded: LoadedConfig
) -> None:
    await app.tasks.add("Before")
    other = await Polpo.open(loaded)  # another process
    count = sa.select(sa.func.count()).select_from(tasks)
    try:
        async with app.store.read() as conn:
            before = (await conn.execute(count)).scalar()
            await other.tasks.add("Meanwhile")
            again = (await conn.execute(count)).scalar()
            counts = await status_store.task_counts(conn)  # what /status reads
        assert before == again == 1
        assert sum(counts.values()) == 1
        assert (await other.tasks.count()) == 2
    finally:
        await other.close()
