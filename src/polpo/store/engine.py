"""Opening the database: engine setup, transactions, migrations on start.

SQLite is the embedded default: WAL journal and a busy timeout so ``polpo
serve`` and CLI commands can use one file at the same time. Writes inside
one process are serialised through an asyncio lock and start with ``BEGIN
IMMEDIATE``, so a write transaction never has to upgrade a read lock (the one
case where SQLite gives up without waiting). PostgreSQL is used through
asyncpg when ``settings.storage.url`` says so.
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
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from polpo.errors import StoreError
from polpo.private_files import private_sqlite_file

#: Identifies this process in the event log and in leases.
PROCESS_ID = f"pid {os.getpid()} on {socket.gethostname()}"

BUSY_TIMEOUT_MS = 15_000


def async_url(url: str) -> str:
    """``sqlite:///x`` → ``sqlite+aiosqlite:///x``; ``postgresql://`` → asyncpg."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
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
    m = re.match(r"^sqlite(?:\+aiosqlite)?:///(.+)$", url)
    if not m or m.group(1) == ":memory:":
        return None
    return Path(m.group(1))


class Store:
    """The database of one project."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Open (creating the file and folder if needed) and bring the schema up to date."""
        aurl = async_url(url)
        kwargs: dict[str, Any] = {}
        path = sqlite_path(aurl)
        if aurl.startswith("sqlite"):
            if path is not None:
                try:
                    private_sqlite_file(path)  # .polpo/ 0700, the database 0600
                except OSError as e:
                    raise StoreError(f"cannot create {path}: {e}") from e
            else:
                kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        if aurl.startswith("postgresql+asyncpg://"):
            require_asyncpg()
        try:
            engine = create_async_engine(aurl, **kwargs)
        except Exception as e:  # bad URL
            raise StoreError(f"cannot open database {display_url(url)}: {e}") from e
        if engine.dialect.name == "sqlite":
            _install_sqlite_hooks(engine)
        elif engine.dialect.name == "postgresql":
            _install_postgres_hooks(engine)
        store = cls(engine, url)
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
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction on one consistent snapshot.

        SQLite's WAL gives every read transaction a snapshot; on PostgreSQL the
        transaction runs at REPEATABLE READ so a multi-statement read (``/status``,
        a mission with its tasks) never mixes states from before and after
        another commit.
        """
        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: all of it commits, or none of it."""
        async with self._write_lock, self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(polpo_begin="IMMEDIATE")
            async with conn.begin():
                yield conn


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


async def advisory_lock(conn: AsyncConnection, name: str) -> None:
    """Hold the database-wide lock ``name`` until this transaction ends (PostgreSQL).

    On SQLite a write transaction already excludes every other writer, so
    there is nothing to take.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)}
        )


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over BEGIN from the driver so we can say IMMEDIATE for writes.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("polpo_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


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
