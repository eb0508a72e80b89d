"""Versioned schema migrations, applied on start.

``polpo_schema`` holds the version. Each step brings the schema from
version N-1 to N in one transaction; two processes starting at once are
serialised by the write transaction (``BEGIN IMMEDIATE`` on SQLite). Until
the first release, step 1 is the whole schema as :mod:`polpo.store.tables`
declares it; every later change is a new step with explicit DDL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from polpo.errors import StoreError
from polpo.store import tables
from polpo.store.engine import Store

schema_table = sa.Table(
    "polpo_schema",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


async def _v1_initial(conn: AsyncConnection) -> None:
    await conn.run_sync(tables.metadata.create_all)


Step = Callable[[AsyncConnection], Awaitable[None]]
STEPS: list[Step] = [_v1_initial]
LATEST = len(STEPS)


async def current_version(conn: AsyncConnection) -> int:
    await conn.run_sync(lambda c: schema_table.create(c, checkfirst=True))
    version = (await conn.execute(sa.select(schema_table.c.version))).scalar()
    return int(version or 0)


async def migrate(store: Store) -> int:
    """Apply pending steps; return the schema version now in place."""
    async with store.write() as conn:
        version = await current_version(conn)
        if version > LATEST:
            raise StoreError(
                f"the database at {store.url} has schema v{version}, newer than this "
                f"Polpo understands (v{LATEST}); upgrade Polpo"
            )
        for n in range(version, LATEST):
            await STEPS[n](conn)
        if version == 0:
            await conn.execute(sa.insert(schema_table).values(id=1, version=LATEST))
        elif version < LATEST:
            await conn.execute(sa.update(schema_table).values(version=LATEST))
    return LATEST
