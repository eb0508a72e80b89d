"""Versioned schema migrations, applied on start.

``polpo_schema`` holds the version. Each step brings the schema from
version N-1 to N in one transaction; two processes starting at once are
serialised by the write transaction (``BEGIN IMMEDIATE`` on SQLite) or by
an advisory lock held until it commits (``pg_advisory_xact_lock`` on
PostgreSQL, where concurrent CREATE TABLE statements would otherwise collide). Until
the first release, step 1 is the whole schema as :mod:`polpo.store.tables`
declares it; every later change is a new step with explicit DDL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from polpo.errors import StoreError
from polpo.store import tables
from polpo.store.connection import Connection
from polpo.store.engine import Store, advisory_lock, display_url

schema_table = sa.Table(
    "polpo_schema",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


async def _v1_initial(conn: Connection) -> None:
    await conn.run_sync(tables.metadata.create_all)


#: v2: columns added to v1's tables (``CREATE TABLE`` covers them in a new database)
_V2_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "inbox": [("owner", "TEXT")],
    "outbox": [
        ("buttons", "JSON"),
        ("parts_sent", "INTEGER NOT NULL DEFAULT 0"),
        ("owner", "TEXT"),
    ],
    "pairing_requests": [("owner", "TEXT")],
}


async def _v2_owners_buttons_cursor(conn: Connection) -> None:
    """Outbox buttons and progress, owners (``polpo simulate``), the notifier's cursor."""

    def apply(c: sa.Connection) -> None:
        inspector = sa.inspect(c)
        for table, columns in _V2_COLUMNS.items():
            have = {col["name"] for col in inspector.get_columns(table)}
            for name, ddl in columns:
                if name not in have:
                    c.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")
        tables.notification_cursor.create(c, checkfirst=True)

    await conn.run_sync(apply)


async def _v3_parts_turned_away_retention(conn: Connection) -> None:
    """Every outbox part's message id (echoes, exactly-once resends), strangers told the
    pairing slots are full, and an index for pruning old events."""

    def apply(c: sa.Connection) -> None:
        tables.outbox_parts.create(c, checkfirst=True)
        tables.pairing_turned_away.create(c, checkfirst=True)
        c.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_events_created ON events (created_at)")

    await conn.run_sync(apply)


async def _v4_peers_last_seen_index(conn: Connection) -> None:
    """``/status`` counts recent peers on an index instead of reading them all."""
    await conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_peers_last_seen ON peers (last_seen)")


async def _v5_forget_strangers(conn: Connection) -> None:
    """What earlier versions kept of messages that were never admitted goes (their text,
    payload, sender and chat: only what dedupe needs stays), and no payload repeats its
    text (the text is stored once, in ``text``)."""
    inbox = tables.inbox
    not_admitted = sa.or_(
        inbox.c.status == "ignored",
        sa.and_(inbox.c.status == "done", inbox.c.outcome.like("pairing:%")),
    )
    await conn.execute(
        inbox.update().where(not_admitted).values(peer_id="", chat_id="", text="", payload={})
    )
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(
            "UPDATE inbox SET payload = (payload::jsonb - 'text')::json "
            "WHERE payload::jsonb -> 'text' IS NOT NULL"
        )
    else:
        await conn.exec_driver_sql(
            "UPDATE inbox SET payload = json_remove(payload, '$.text') "
            "WHERE json_type(payload, '$.text') IS NOT NULL"
        )


Step = Callable[[Connection], Awaitable[None]]
STEPS: list[Step] = [
    _v1_initial,
    _v2_owners_buttons_cursor,
    _v3_parts_turned_away_retention,
    _v4_peers_last_seen_index,
    _v5_forget_strangers,
]
LATEST = len(STEPS)


async def current_version(conn: Connection) -> int:
    await conn.run_sync(lambda c: schema_table.create(c, checkfirst=True))
    version = (await conn.execute(sa.select(schema_table.c.version))).scalar()
    return int(version or 0)


async def migrate(store: Store) -> int:
    """Apply pending steps; return the schema version now in place."""
    async with store.write() as conn:
        await advisory_lock(conn, "migrations")
        version = await current_version(conn)
        if version > LATEST:
            raise StoreError(
                f"the database at {display_url(store.url)} has schema v{version}, newer than this "
                f"Polpo understands (v{LATEST}); upgrade Polpo"
            )
        for n in range(version, LATEST):
            await STEPS[n](conn)
        if version == 0:
            await conn.execute(sa.insert(schema_table).values(id=1, version=LATEST))
        elif version < LATEST:
            await conn.execute(sa.update(schema_table).values(version=LATEST))
    return LATEST
