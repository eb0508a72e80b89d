"""Four processes opening one empty database at once: every one of them opens it."""

from __future__ import annotations

import sqlalchemy as sa

from polpo.store import Store
from polpo.store.migrations import LATEST, schema_table
from tests.concurrency.workers import open_store, run_processes


async def test_four_processes_migrate_an_empty_database_at_once(database_url: str) -> None:
    outcomes = run_processes(open_store, [(database_url,)] * 4)
    assert sorted(outcomes) == [("opened",)] * 4, outcomes
    store = await Store.open(database_url)
    try:
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(schema_table))).all()
    finally:
        await store.close()
    assert [r.version for r in rows] == [LATEST]
