"""Opening the database: the engine for the URL, transactions, migrations on start.

SQLite is the embedded default (:mod:`polpo.store.sqlite`: synchronous
connections on the event loop, WAL, ``BEGIN IMMEDIATE`` for writes, writers
of one process taking turns). PostgreSQL is used through SQLAlchemy's
asyncio engine (asyncpg) when ``settings.storage.url`` says so; that engine
is imported only then, so a CLI command on SQLite never pays for it. Both
hand out the same :class:`~polpo.store.connection.Connection`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

from polpo.errors import StoreError
from polpo.private_files import private_sqlite_file
from polpo.store.connection import AsyncConnectionAdapter, Connection, SyncConnection
from polpo.store.sqlite import BUSY_TIMEOUT_MS, SqliteDatabase

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "BUSY_TIMEOUT_MS",
    "PROCESS_ID",
    "Store",
    "advisory_lock",
    "async_url",
    "dialect_insert",
    "display_url",
    "insert_ignore",
    "sqlite_path",
    "upsert",
]

#: Identifies this process in the event log and in leases.
PROCESS_ID = f"pid {os.getpid()} on {socket.gethostname()}"


def async_url(url: str) -> str:
    """``postgresql://`` → ``postgresql+asyncpg://`` (SQLite URLs stay as they are)."""
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


#: What to install for PostgreSQL (README, error messages).
POSTGRES_EXTRA = "pip install 'polpo[postgres]' (in a checkout: pip install -e '.[postgres]')"


def require_asyncpg() -> None:
    """A clear one-line error when the PostgreSQL driver is not installed."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise StoreError(
            f"PostgreSQL needs the asyncpg driver, which is not installed: {POSTGRES_EXTRA}"
        ) from None


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages and summaries."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def sqlite_path(url: str) -> Path | None:
    m = re.match(r"^sqlite(?:\+\w+)?:///(.+)$", url)
    if not m or m.group(1) == ":memory:":
        return None
    return Path(m.group(1))


class Store:
    """The database of one project."""

    def __init__(
        self, url: str, *, sqlite: SqliteDatabase | None = None, engine: AsyncEngine | None = None
    ) -> None:
        self.url = url
        self._sqlite = sqlite
        self._engine = engine
        self.dialect = "sqlite" if sqlite is not None else "postgresql"
        self.is_sqlite = sqlite is not None
        self._write_lock = asyncio.Lock()
        #: the task inside a write transaction, and its connection
        self._writing: tuple[asyncio.Task[Any], Connection] | None = None

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Open (creating the file and folder if needed) and bring the schema up to date."""
        if url.startswith("sqlite"):
            path = sqlite_path(url)
            if path is not None:
                try:
                    private_sqlite_file(path)  # .polpo/ 0700, the database 0600
                except OSError as e:
                    raise StoreError(f"cannot create {path}: {e}") from e
            store = cls(url, sqlite=SqliteDatabase(path))
        else:
            aurl = async_url(url)
            if aurl.startswith("postgresql+asyncpg://"):
                require_asyncpg()
            try:
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine(aurl)
            except Exception as e:  # bad URL
                raise StoreError(f"cannot open database {display_url(url)}: {e}") from e
            if engine.dialect.name == "postgresql":
                _install_postgres_hooks(engine)
            store = cls(url, engine=engine)
        if migrate:
            from polpo.store.migrations import migrate as run_migrations

            try:
                await run_migrations(store)
            except StoreError:
                await store.close()
                raise
            except Exception as e:
                await store.close()
                raise StoreError(f"cannot open database {display_url(url)}: {e}") from e
        return store

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            await self._engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """A read-only transaction on one consistent snapshot.

        SQLite's WAL gives every read transaction a snapshot; on PostgreSQL the
        transaction runs at REPEATABLE READ so a multi-statement read (``/status``,
        a mission with its tasks) never mixes states from before and after
        another commit.

        Inside a write transaction of the same task it is that transaction: a
        read there sees what the write has done so far (the gateway answers a
        ``/status`` in the transaction that stored it, and counts its sender)."""
        writing = self._writing
        if writing is not None and writing[0] is asyncio.current_task():
            yield writing[1]
            return
        if self._sqlite is not None:
            async with self._sqlite.read() as conn:
                yield SyncConnection(conn)
            return
        assert self._engine is not None
        async with self._engine.connect() as aconn:
            aconn = await aconn.execution_options(isolation_level="REPEATABLE READ")
            async with aconn.begin():
                yield AsyncConnectionAdapter(aconn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """A write transaction: all of it commits, or none of it. Writers of this
        process take turns."""
        task = asyncio.current_task()
        if self._writing is not None and self._writing[0] is task:
            raise StoreError("a write transaction inside another one (the same task)")
        if self._sqlite is not None:
            async with self._sqlite.write() as conn:
                try:
                    yield self._enter(task, SyncConnection(conn))
                finally:
                    self._writing = None
            return
        assert self._engine is not None
        async with self._write_lock, self._engine.connect() as aconn, aconn.begin():
            try:
                yield self._enter(task, AsyncConnectionAdapter(aconn))
            finally:
                self._writing = None

    def _enter(self, task: asyncio.Task[Any] | None, conn: Connection) -> Connection:
        self._writing = (task, conn) if task is not None else None
        return conn


#: What a NUL character becomes on PostgreSQL (U+FFFD, the replacement character).
NUL_REPLACEMENT = "\ufffd"


def _install_postgres_hooks(engine: AsyncEngine) -> None:
    """PostgreSQL text cannot hold NUL (SQLite's can): store U+FFFD in its place.

    A title typed with a stray control character, or a chat message carrying
    one, would otherwise fail its whole transaction (an API 500, a message
    never stored). JSON columns are not affected: JSON escapes NUL.
    """

    @event.listens_for(engine.sync_engine, "before_cursor_execute", retval=True)
    def _no_nul(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> tuple[str, Any]:
        if many:
            return statement, [_clean(p) for p in parameters]
        return statement, _clean(parameters)


def _clean(params: Any) -> Any:
    if isinstance(params, dict):
        if any(isinstance(v, str) and "\x00" in v for v in params.values()):
            return {k: _denul(v) for k, v in params.items()}
        return params
    if isinstance(params, (tuple, list)):
        if any(isinstance(v, str) and "\x00" in v for v in params):
            return type(params)(_denul(v) for v in params)
        return params
    return params


def _denul(value: Any) -> Any:
    return value.replace("\x00", NUL_REPLACEMENT) if isinstance(value, str) else value


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` from a lock's name."""
    return int.from_bytes(hashlib.sha256(f"polpo:{name}".encode()).digest()[:8], "big", signed=True)


async def advisory_lock(conn: Connection, name: str) -> None:
    """Hold the database-wide lock ``name`` until this transaction ends (PostgreSQL).

    On SQLite a write transaction already excludes every other writer, so
    there is nothing to take.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)}
        )


def insert_ignore(store: Store | str, table: sa.Table) -> Any:
    """An INSERT that silently skips rows whose unique key already exists.

    ``store`` may be a dialect name (``conn.dialect.name``). With ``RETURNING``
    a skipped row returns nothing, so the caller knows whether it inserted.
    """
    return dialect_insert(store, table).on_conflict_do_nothing()


def upsert(store: Store | str, table: sa.Table, key: list[str], update: list[str]) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET`` the ``update`` columns from the new row.

    One statement on both engines: two processes writing the same key at once
    both succeed, the last one's values kept (an update-then-insert-if-missing
    would fail one of them with a duplicate key on PostgreSQL).
    """
    stmt = dialect_insert(store, table)
    return stmt.on_conflict_do_update(
        index_elements=key, set_={c: stmt.excluded[c] for c in update}
    )


def dialect_insert(store: Store | str, table: sa.Table) -> Any:
    """``table``'s INSERT for the engine, with its ``on_conflict_…`` methods."""
    dialect = store if isinstance(store, str) else store.dialect
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)
