"""The write batcher against another process holding SQLite's write lock."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import sqlalchemy as sa

from polpo.gateway.writes import SyncTx, WriteBatcher
from polpo.store.engine import sqlite_path
from polpo.store.tables import events

from .conftest import OpenProject


@pytest.mark.sqlite_only(reason="another process holding SQLite's write lock")
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


def test_driver_sql_stores_and_reads_what_core_would() -> None:
    from polpo.gateway.writes import _PLAIN, execute

    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    t = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("at", sa.Float),
        sa.Column("data", sa.JSON),
        sa.Column("flag", sa.Text, default="x"),  # a Python-side default: through Core
    )
    meta.create_all(engine)
    insert = t.insert().returning(t.c.id)
    with engine.begin() as conn:
        row_id = execute(
            conn, insert, {"name": "a", "at": 1, "data": {"k": [1, "é"]}, "flag": "y"}
        ).fetchall()
        # with every column given, it went straight to sqlite3 (JSON converted as Core does)
        assert any(p is not None and p.statement is insert for p in _PLAIN.values())
        core_id = conn.execute(insert, {"name": "b", "at": 2.5, "data": None}).scalar()
        execute(
            conn,
            t.update().where(t.c.id == sa.bindparam("row")).values(at=t.c.at + 1),
            {"row": core_id},
        )
        # an expanding IN goes through Core and still works
        ids = execute(
            conn,
            sa.select(t.c.id).where(t.c.id.in_(sa.bindparam("ids", expanding=True))),
            {"ids": [row_id[0][0], core_id]},
        ).fetchall()
        rows = conn.execute(sa.select(t).order_by(t.c.id)).all()
    assert sorted(r[0] for r in ids) == [1, 2]
    assert [(r.name, r.at, r.data, r.flag) for r in rows] == [
        ("a", 1.0, {"k": [1, "é"]}, "y"),
        ("b", 3.5, None, "x"),
    ]
