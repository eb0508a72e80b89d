"""The write batcher and SQLite's write lock held by another process."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from polpo.clock import FakeClock
from polpo.core.events import EventBus
from polpo.store import Store
from polpo.store.batch import WriteBatcher
from polpo.store.engine import sqlite_path
from polpo.store.tables import events
from polpo.store.tx import Tx


async def _names(store: Store) -> list[str]:
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(events.c.type).order_by(events.c.id))).all()
    return [r[0] for r in rows if r[0].startswith("test:")]


def _emit(name: str):  # type: ignore[no-untyped-def]
    async def step(tx: Tx) -> int:
        return (await tx.emit(name, {})).id

    return step


async def test_a_write_waits_for_another_process_lock_without_blocking_and_the_next_goes_on(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'polpo.db'}")
    batcher = WriteBatcher(store, now=FakeClock().now, origin="test", publish=EventBus().publish)
    path = sqlite_path(store.url)
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # "another process" holds the write lock
        first = asyncio.create_task(batcher.run(_emit("test:first")))
        for _ in range(20):  # the loop keeps running meanwhile
            await asyncio.sleep(0)
        assert not first.done()
        other.execute("COMMIT")
        await asyncio.wait_for(first, 10)
        await asyncio.wait_for(batcher.run(_emit("test:second")), 10)
        assert await _names(store) == ["test:first", "test:second"]
    finally:
        other.close()
        await batcher.close()
        await store.close()


async def test_steps_queued_together_share_one_transaction_and_a_bad_one_fails_alone(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'polpo.db'}")
    batcher = WriteBatcher(store, now=FakeClock().now, origin="test", publish=EventBus().publish)

    async def bad(tx: Tx) -> None:
        await tx.emit("test:bad", {})
        raise RuntimeError("boom")

    try:
        results = await asyncio.gather(
            batcher.run(_emit("test:a")),
            batcher.run(bad),
            batcher.run(_emit("test:b")),
            return_exceptions=True,
        )
        assert isinstance(results[1], RuntimeError)
        assert await _names(store) == ["test:a", "test:b"]  # the bad step left nothing
        # one failed batch, then each step alone: a, b committed (the bad one rolled back)
        assert batcher.steps == 2
    finally:
        await batcher.close()
        await store.close()


async def test_a_read_sees_one_snapshot_while_another_connection_writes(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'polpo.db'}")
    batcher = WriteBatcher(store, now=FakeClock().now, origin="test", publish=EventBus().publish)
    try:
        await batcher.run(_emit("test:one"))
        async with store.read() as conn:
            before = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar()
            await batcher.run(_emit("test:two"))  # commits meanwhile, on the writer
            after = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar()
        assert before == after
        assert await _names(store) == ["test:one", "test:two"]
    finally:
        await batcher.close()
        await store.close()


async def test_steps_arriving_while_one_commits_share_the_next_transaction(
    tmp_path: Path,
) -> None:
    """An idle batcher commits a step in its caller's task; steps arriving meanwhile
    (here while it waits for another process's lock) queue and commit together, and
    ``wait_idle`` waits for all of them."""
    store = await Store.open(f"sqlite:///{tmp_path / 'polpo.db'}")
    batcher = WriteBatcher(store, now=FakeClock().now, origin="test", publish=EventBus().publish)
    other = sqlite3.connect(str(sqlite_path(store.url)), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(batcher.run(_emit("test:first")))
        for _ in range(5):
            await asyncio.sleep(0)
        later = [asyncio.create_task(batcher.run(_emit(f"test:later{i}"))) for i in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done() and not any(t.done() for t in later)
        other.execute("COMMIT")
        await asyncio.wait_for(batcher.wait_idle(), 10)
        assert first.done() and all(t.done() for t in later)
        assert await _names(store) == ["test:first", "test:later0", "test:later1", "test:later2"]
        assert (batcher.transactions, batcher.steps) == (2, 4)
    finally:
        other.close()
        await batcher.close()
        await store.close()
