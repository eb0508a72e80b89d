"""The connection of one transaction: one type for every caller, on either engine.

Code above the store says ``await conn.execute(statement)`` and never knows
which engine runs it. On SQLite (:mod:`polpo.store.sqlite`) the statement
runs synchronously on the loop's own connection and the coroutine never
suspends; on PostgreSQL it goes through SQLAlchemy's asyncio engine. A
synchronous function of a :class:`sqlalchemy.Connection` runs on either with
:meth:`Connection.run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Connection:
    """A connection inside one transaction (read or write)."""

    @property
    def dialect(self) -> sa.Dialect:
        raise NotImplementedError

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Any:
        """Run a Core statement; a buffered :class:`sqlalchemy.CursorResult`."""
        raise NotImplementedError

    async def scalar(self, statement: sa.Executable, parameters: Params = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def exec_driver_sql(self, sql: str, parameters: Params = None) -> Any:
        """Run SQL text in the driver's own parameter style."""
        raise NotImplementedError

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(sync_connection, *args)`` in this transaction."""
        raise NotImplementedError

    def driver_connection(self) -> Any | None:
        """The DB-API connection when statements may run on it straight from the loop
        (SQLite), else None."""
        return None


class SyncConnection(Connection):
    """A synchronous connection used from the event loop (SQLite)."""

    __slots__ = ("_driver", "sync")

    def __init__(self, sync: sa.Connection) -> None:
        self.sync = sync
        #: looked up once: hot statements ask for it several times per message
        self._driver = sync.connection.driver_connection

    @property
    def dialect(self) -> sa.Dialect:
        return self.sync.dialect

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Any:
        return self.sync.execute(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Params = None) -> Any:
        return self.sync.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync, *args)

    def driver_connection(self) -> Any | None:
        return self._driver


class AsyncConnectionAdapter(Connection):
    """A connection of SQLAlchemy's asyncio engine (PostgreSQL through asyncpg)."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> sa.Dialect:
        return self.conn.dialect

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Any:
        return await self.conn.execute(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Params = None) -> Any:
        return await self.conn.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.conn.run_sync(fn, *args)
