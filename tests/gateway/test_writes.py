"""The write batcher against another process holding SQLite's write lock."""

from __future__ import annotations

import asyncio
import sqlite3

import sqlalchemy as sa

from polpo.gateway.writes import SyncTx, WriteBatcher
from polpo.store.engine import sqlite_path
from polpo.store.tables import events

from .conftest import OpenProject


async def test_a_write_waits_for_another_process_lock_without_blocking_and_the_next_goes_on(
    open_project: OpenProject,
) -> None:
    app = await open_project()
    batcher = WriteBatcher(app.ctx)
    path = sqlite_path(app.ctx.store.url)
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # "another process" holds the write lock

        def emit(name: str):  # type: ignore[no-untyped-def]
            def step(tx: SyncTx) -> int:
                return tx.emit(name, {}).id

            return step

        first = asyncio.create_task(batcher.run(emit("test:first")))
        for _ in range(20):  # the loop keeps running meanwhile
            await asyncio.sleep(0)
        assert not first.done()
        other.execute("COMMIT")
        await asyncio.wait_for(first, 10)
        await asyncio.wait_for(batcher.run(emit("test:second")), 10)
        names = await batcher.read(
            lambda conn: [
                r[0] for r in conn.execute(sa.select(events.c.type).order_by(events.c.id)).all()
            ]
        )
        assert [n for n in names if n.startswith("test:")] == ["test:first", "test:second"]
    finally:
        other.close()
        await batcher.close()
