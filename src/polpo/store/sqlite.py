"""SQLite, the embedded default: synchronous connections used right on the event loop.

A statement on a local SQLite file takes microseconds; a hop to a worker
thread per statement (what an async driver does) costs more than the
statement. So every transaction runs on a plain ``sqlite3`` connection on
the loop, kept open (one for writes, a few for reads):

- Every connection is set up by :func:`connect` alone: WAL journal (readers
  never wait for the writer), ``synchronous = NORMAL``, foreign keys, and
  ``BEGIN`` taken over from the driver so writes can say ``IMMEDIATE`` (a
  write transaction never has to upgrade a read lock, the one case where
  SQLite gives up without waiting).
- Writes take turns through an asyncio lock (one writer per process). The
  writer first tries ``BEGIN IMMEDIATE`` without waiting; if another
  *process* holds the write lock, it waits for it in a worker thread (busy
  timeout 15 s), so the loop never blocks on a lock. Holding the lock, the
  rest of the transaction cannot be kept waiting.
- Reads take a connection of their own (``BEGIN DEFERRED``): under WAL each
  is one consistent snapshot and never waits for a writer.
- Checkpoints (copying the WAL back into the database, with an fsync) never
  run on the loop: SQLite's automatic ones are off on these connections, and
  every :data:`CHECKPOINT_EVERY` commits a passive checkpoint runs in a
  worker thread on a connection of its own. (On the loop, one took tens of
  milliseconds every hundred messages or so.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool, StaticPool

from polpo.errors import StoreError

BUSY_TIMEOUT_MS = 15_000
#: Idle read connections kept open.
MAX_IDLE_READERS = 4
#: Commits between two checkpoints (in a worker thread).
CHECKPOINT_EVERY = 500


def connect(
    path: Path | None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, autocheckpoint: bool = True
) -> sqlite3.Connection:
    """A DB-API connection to the database file at ``path`` (None: in memory), set up
    the one way every Polpo connection is. ``autocheckpoint`` False: whoever commits
    on it checkpoints elsewhere (see the module doc)."""
    conn = sqlite3.connect(
        str(path) if path is not None else ":memory:",
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # we say BEGIN ourselves
        check_same_thread=False,  # the writer may wait for the lock in a worker thread
    )
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite saying another connection holds the lock."""
    orig = getattr(error, "orig", error)
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    text = str(orig).lower()
    return "locked" in text or "busy" in text


class SqliteDatabase:
    """The open connections of one SQLite database and its transactions."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create {path.parent}: {e}") from e
        # An in-memory database lives in its one connection: every transaction uses it.
        self.engine = sa.create_engine(
            "sqlite://",
            creator=lambda: connect(path, autocheckpoint=path is None),
            poolclass=NullPool if path is not None else StaticPool,
        )

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            if not _driver(conn).in_transaction:  # a writer has begun already (see _begin)
                conn.exec_driver_sql("BEGIN")

        self._write_lock = asyncio.Lock()
        #: the task inside a write transaction
        self._holder: asyncio.Task[object] | None = None
        self._writer: sa.Connection | None = None
        self._readers: list[sa.Connection] = []
        self._executor: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._commits = 0

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): all of it commits, or none of it.

        A write opened inside another by the same task would wait for itself for
        ever: it raises :class:`StoreError` instead."""
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            raise StoreError("a write transaction inside another one (the same task)")
        async with self._write_lock:
            self._holder = task
            conn = self._writer
            if conn is None:
                conn = self._writer = self._open()
                _driver(conn).execute("PRAGMA busy_timeout = 0")  # never wait on the loop
            try:
                try:
                    await self._begin(conn)
                except BaseException:
                    self._drop_writer()
                    raise
                try:
                    yield conn
                except BaseException:
                    self._end(conn, commit=False)
                    raise
                self._end(conn, commit=True)
            finally:
                self._holder = None
            self._commits += 1
            if self._commits >= CHECKPOINT_EVERY and self.path is not None:
                self._start_checkpoint()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[sa.Connection]:
        """A read transaction: one consistent snapshot, never waiting for writers."""
        if self.path is None:  # one connection for everything
            async with self.write() as conn:
                yield conn
            return
        conn = self._readers.pop() if self._readers else self._open()
        try:
            conn.begin()
        except BaseException:
            conn.close()
            raise
        try:
            yield conn
        finally:
            if self._end(conn, commit=False) and len(self._readers) < MAX_IDLE_READERS:
                self._readers.append(conn)
            else:
                conn.close()

    def _start_checkpoint(self) -> None:
        if self._checkpointing is not None and not self._checkpointing.done():
            return  # one at a time; the next commit tries again
        self._commits = 0
        if self._checkpointer is None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="polpo-checkpoint")
        loop = asyncio.get_running_loop()
        self._checkpointing = loop.run_in_executor(self._checkpointer, self._checkpoint)

    def _checkpoint(self) -> None:
        """In the worker thread: copy what no reader still needs back into the database."""
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = connect(self.path)
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # busy or gone: the next one tries again

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.shutdown(wait=True)
            self._checkpointer = None
        if self._checkpoint_conn is not None:
            with contextlib.suppress(Exception):
                self._checkpoint_conn.close()
            self._checkpoint_conn = None
        for conn in [*self._readers, *([self._writer] if self._writer else [])]:
            with contextlib.suppress(Exception):
                conn.close()
        self._readers.clear()
        self._writer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.engine.dispose()

    # -- connections ---------------------------------------------------------------

    def _open(self) -> sa.Connection:
        return self.engine.connect()

    async def _begin(self, conn: sa.Connection) -> None:
        """``BEGIN IMMEDIATE`` on the loop; if another process holds the lock, wait for
        it in a worker thread instead."""
        driver = _driver(conn)
        try:
            driver.execute("BEGIN IMMEDIATE")  # the writer's busy timeout is 0
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="polpo-sqlite-lock")
            await asyncio.get_running_loop().run_in_executor(self._executor, _begin_waiting, driver)
        conn.begin()  # SQLAlchemy's view of it (the driver's transaction is open)

    def _end(self, conn: sa.Connection, *, commit: bool) -> bool:
        """Commit or roll back; False (and the connection closed) if that failed."""
        trans = conn.get_transaction()
        try:
            if trans is not None:
                if commit:
                    trans.commit()
                else:
                    trans.rollback()
            return True
        except BaseException:
            if conn is self._writer:
                self._drop_writer()
            else:
                with contextlib.suppress(Exception):
                    conn.close()
            if commit:
                raise
            return False

    def _drop_writer(self) -> None:
        """After an error the connection may be in any state: open a fresh one next time."""
        conn, self._writer = self._writer, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _begin_waiting(driver: sqlite3.Connection) -> None:
    """In a worker thread: ``BEGIN IMMEDIATE``, waiting up to the busy timeout."""
    driver.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        driver.execute("BEGIN IMMEDIATE")
    finally:
        driver.execute("PRAGMA busy_timeout = 0")


def _driver(conn: sa.Connection) -> Any:
    """The ``sqlite3`` connection under ``conn`` (SQLAlchemy's public accessor)."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi
