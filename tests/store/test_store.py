"""The store: SQLite's WAL and busy timeout, migrations, and id prefix lookups (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from polpo.errors import AmbiguousIdError, NotFoundError, StoreError
from polpo.store import Store
from polpo.store.migrations import LATEST, schema_table
from polpo.store.records import find_task, new_short_id, resolve_id
from polpo.store.tables import tasks


@pytest.fixture
def url(database_url: str, tmp_path: Path) -> str:
    """The test's database (on SQLite in a folder that does not exist yet)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'sub' / 'polpo.db'}"
    return database_url


@pytest.mark.sqlite_only(reason="the SQLite file, its WAL journal and busy timeout")
async def test_open_creates_the_file_in_wal_mode_with_a_busy_timeout(
    tmp_path: Path, url: str
) -> None:
    store = await Store.open(url)
    try:
        assert (tmp_path / "sub" / "polpo.db").exists()
        async with store.read() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            version = (await conn.execute(sa.select(schema_table.c.version))).scalar()
        assert mode == "wal"
        assert timeout is not None and int(timeout) >= 5000
        assert version == LATEST
    finally:
        await store.close()


async def test_migrations_are_idempotent_across_opens(url: str) -> None:
    for _ in range(2):
        store = await Store.open(url)
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(schema_table))).all()
        await store.close()
        assert len(rows) == 1


async def test_a_newer_schema_is_refused(url: str) -> None:
    store = await Store.open(url)
    async with store.write() as conn:
        await conn.execute(sa.update(schema_table).values(version=LATEST + 5))
    await store.close()
    with pytest.raises(StoreError, match="newer than this Polpo understands"):
        await Store.open(url)


async def test_write_rolls_back_on_error(url: str) -> None:
    store = await Store.open(url)
    try:
        with pytest.raises(RuntimeError):
            async with store.write() as conn:
                await _insert(conn, "aaaabbbbccccdddd", "aaaa")
                raise RuntimeError("half-way")
        async with store.read() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
        assert count == 0
    finally:
        await store.close()


async def _insert(
    conn: sa.ext.asyncio.AsyncConnection, full: str, short: str, title: str = "t"
) -> None:
    await conn.execute(
        tasks.insert().values(
            id=full,
            short_id=short,
            title=title,
            depends_on=[],
            status="pending",
            feedback=[],
            created_by="test",
            created_at=1.0,
            updated_at=1.0,
        )
    )


@pytest.fixture
async def store(url: str) -> Store:
    s = await Store.open(url)
    yield s  # type: ignore[misc]
    await s.close()


async def test_short_ids_grow_past_a_taken_prefix(store: Store) -> None:
    async with store.write() as conn:
        await _insert(conn, "k7m2aaaaaaaaaaaa", "k7m2")
        assert await new_short_id(conn, tasks, "k7m2bbbbbbbbbbbb") == "k7m2b"
        await _insert(conn, "k7m2bbbbbbbbbbbb", "k7m2b")
        assert await new_short_id(conn, tasks, "k7m2bcccccccccccc"[:16]) == "k7m2bc"
        assert await new_short_id(conn, tasks, "zzzzzzzzzzzzzzzz") == "zzzz"


async def test_prefix_resolution(store: Store) -> None:
    async with store.write() as conn:
        await _insert(conn, "k7m2aaaaaaaaaaaa", "k7m2", "first")
        await _insert(conn, "k7m2bbbbbbbbbbbb", "k7m2b", "second")
        await _insert(conn, "p9q8cccccccccccc", "p9q8", "third")
    async with store.read() as conn:
        # the short id itself, whatever else shares its prefix
        assert await resolve_id(conn, tasks, "k7m2", "task", "title") == "k7m2aaaaaaaaaaaa"
        # case-insensitive, "#" and spaces tolerated
        assert await resolve_id(conn, tasks, " #K7M2B ", "task", "title") == "k7m2bbbbbbbbbbbb"
        # any unique prefix of the full id
        assert await resolve_id(conn, tasks, "p9q8ccc", "task", "title") == "p9q8cccccccccccc"
        assert (await find_task(conn, "k7m2aa")).title == "first"
        # the full id
        assert (
            await resolve_id(conn, tasks, "p9q8cccccccccccc", "task", "title") == "p9q8cccccccccccc"
        )


async def test_ambiguous_prefix_lists_the_candidates(store: Store) -> None:
    async with store.write() as conn:
        await _insert(conn, "abcd1111aaaaaaaa", "abcd1", "alpha")
        await _insert(conn, "abcd2222bbbbbbbb", "abcd2", "beta")
    async with store.read() as conn:
        with pytest.raises(AmbiguousIdError) as info:
            await resolve_id(conn, tasks, "abcd", "task", "title")
    err = info.value
    assert err.candidates == ["abcd1111aaaaaaaa", "abcd2222bbbbbbbb"]
    assert "ambiguous" in err.message
    assert "abcd1 alpha" in err.message and "abcd2 beta" in err.message
    assert err.http_status == 409


async def test_short_or_unknown_refs_are_not_found(store: Store) -> None:
    async with store.write() as conn:
        await _insert(conn, "abcd1111aaaaaaaa", "abcd")
    async with store.read() as conn:
        with pytest.raises(NotFoundError, match="at least 4 characters"):
            await resolve_id(conn, tasks, "abc", "task", "title")
        with pytest.raises(NotFoundError, match="no task matches 'zzzz'"):
            await resolve_id(conn, tasks, "zzzz", "task", "title")
        # LIKE wildcards in user input are literal, not patterns
        with pytest.raises(NotFoundError):
            await resolve_id(conn, tasks, "ab%_", "task", "title")


async def test_a_v1_database_gains_the_v2_columns_and_keeps_its_rows(url: str) -> None:
    """A database written by the first schema opens, upgraded, with nothing lost."""
    from polpo.store.migrations import _V2_COLUMNS

    store = await Store.open(url)
    async with store.write() as conn:
        await _insert(conn, "aaaabbbbccccdddd", "aaaa")
        for table, columns in _V2_COLUMNS.items():
            for name, _ddl in columns:
                await conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {name}")
        await conn.exec_driver_sql("DROP TABLE notification_cursor")
        await conn.execute(sa.update(schema_table).values(version=1))
    await store.close()

    store = await Store.open(url)
    try:
        async with store.read() as conn:
            version = (await conn.execute(sa.select(schema_table.c.version))).scalar()
            outbox_cols = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("outbox")}
            )
            cursor = await conn.exec_driver_sql("SELECT count(*) FROM notification_cursor")
            kept = await find_task(conn, "aaaa")
        assert version == LATEST
        assert {"owner", "buttons", "parts_sent"} <= outbox_cols
        assert cursor.scalar() == 0
        assert kept.id == "aaaabbbbccccdddd"
    finally:
        await store.close()


async def test_a_v2_database_gains_the_outbox_parts_and_turned_away_tables(url: str) -> None:
    store = await Store.open(url)
    async with store.write() as conn:
        await _insert(conn, "aaaabbbbccccdddd", "aaaa")
        await conn.exec_driver_sql("DROP TABLE outbox_parts")
        await conn.exec_driver_sql("DROP TABLE pairing_turned_away")
        await conn.exec_driver_sql("DROP INDEX ix_events_created")
        await conn.execute(sa.update(schema_table).values(version=2))
    await store.close()

    store = await Store.open(url)
    try:
        async with store.read() as conn:

            def names_of(c: sa.Connection) -> set[str]:
                inspector = sa.inspect(c)
                indexes = {ix["name"] for ix in inspector.get_indexes("events")}
                return {*inspector.get_table_names(), *(n for n in indexes if n)}

            names = await conn.run_sync(names_of)
            kept = await find_task(conn, "aaaa")
        assert {"outbox_parts", "pairing_turned_away", "ix_events_created"} <= names
        assert kept.id == "aaaabbbbccccdddd"
    finally:
        await store.close()


async def test_an_older_database_forgets_what_strangers_said_and_stores_each_text_once(
    url: str,
) -> None:
    from polpo.store.migrations import STEPS, _v5_forget_strangers
    from polpo.store.tables import inbox

    def row(n: int, status: str, outcome: str | None) -> dict[str, object]:
        return {
            "channel": "whatsapp",
            "message_id": f"m{n}",
            "peer_id": f"whatsapp:4915{n}",
            "chat_id": f"4915{n}@s.whatsapp.net",
            "text": f"said {n}",
            "payload": {"text": f"said {n}", "peer": f"4915{n}", "kind": "text"},
            "sent_at": 1.0,
            "received_at": 1.0,
            "status": status,
            "outcome": outcome,
        }

    store = await Store.open(url)
    async with store.write() as conn:
        await conn.execute(
            inbox.insert(),
            [
                row(1, "done", "chat"),
                row(2, "ignored", "not allowed"),
                row(3, "done", "pairing: created"),
                row(4, "received", None),
            ],
        )
        before = STEPS.index(_v5_forget_strangers)
        await conn.execute(sa.update(schema_table).values(version=before))
    await store.close()

    store = await Store.open(url)
    try:
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(inbox).order_by(inbox.c.message_id))).all()
    finally:
        await store.close()
    assert [(r.peer_id, r.text, r.payload) for r in rows] == [
        ("whatsapp:49151", "said 1", {"peer": "49151", "kind": "text"}),
        ("", "", {}),
        ("", "", {}),
        ("whatsapp:49154", "said 4", {"peer": "49154", "kind": "text"}),
    ]
