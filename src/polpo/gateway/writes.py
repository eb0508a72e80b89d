"""A small write coalescer: many lanes' writes share one transaction and one thread hop.

Every step of the pipeline that writes (store an inbound message, admit a
peer, record a reply, mark a row sent) is a plain synchronous function of a
:class:`SyncTx`. Steps submitted while a transaction runs wait, then all run
in the next one: under load hundreds of messages commit together instead of
one ``BEGIN IMMEDIATE … COMMIT`` each.

On SQLite the batch runs on a dedicated synchronous connection in one worker
thread (one hop per batch instead of one per statement, which is what async
drivers cost); the store's write lock is held meanwhile, so in-process
writers still take turns. On other databases the batch runs through the
store's async engine (``run_sync``). Each step still happens completely or
not at all: if any step of a batch fails, the batch is rolled back and its
steps are retried one transaction each, so one bad step fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect

from polpo.core.models import Event
from polpo.services.context import ServiceContext
from polpo.store.engine import BUSY_TIMEOUT_MS, sqlite_path
from polpo.store.event_order import commit_order_sync
from polpo.store.tables import events as events_table

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The most steps one transaction takes; more wait for the next one.
MAX_BATCH = 500


@dataclass
class SyncTx:
    """One write transaction (synchronous) and the events it publishes after commit."""

    conn: sa.Connection
    now: float
    origin: str
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, payload: dict[str, Any]) -> Event:
        res = self.conn.execute(
            sa.insert(events_table)
            .values(type=type_, payload=payload, created_at=self.now, origin=self.origin)
            .returning(events_table.c.id)
        )
        ev = Event(
            id=int(res.scalar_one()),
            type=type_,
            payload=payload,
            created_at=self.now,
            origin=self.origin,
        )
        self.events.append(ev)
        return ev


Step = Callable[[SyncTx], Any]


class WriteBatcher:
    def __init__(self, ctx: ServiceContext, *, max_batch: int = MAX_BATCH) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self._queue: list[tuple[Step, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._engine: sa.Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        path = sqlite_path(ctx.store.url) if ctx.store.is_sqlite else None
        self._inline: sa.Engine | None = None
        # kept open on the loop (no pool checkout and reset per transaction); closed and
        # opened afresh after any error
        self._inline_conns: dict[str, sa.Connection] = {}
        if path is not None:
            self._engine = _sqlite_engine(str(path), BUSY_TIMEOUT_MS)
            self._inline = _sqlite_engine(str(path), 0)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="polpo-writes")
        #: transactions committed and steps run (for the benchmark and tests)
        self.transactions = 0
        self.steps = 0

    async def run(self, step: Callable[[SyncTx], T]) -> T:
        """Run ``step`` in a write transaction (shared with others) and return its result."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((step, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="polpo-write-batcher")
        return await fut

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in a read transaction (on SQLite in the worker thread: one hop)."""
        if self._engine is not None and self._executor is not None and self._inline is not None:
            engine = self._engine

            def work(engine: sa.Engine = engine) -> T:
                with engine.connect() as conn, conn.begin():
                    return fn(conn)

            try:  # right here: a read under WAL does not wait for writers
                return self._on_inline("DEFERRED", fn)
            except sa.exc.OperationalError as e:
                if not _is_busy(e):
                    raise
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        async with self.ctx.store.read() as aconn:
            return await aconn.run_sync(fn)

    async def wait_idle(self) -> None:
        while self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    def _on_inline(self, mode: str, fn: Callable[[sa.Connection], T]) -> T:
        """``fn`` in one transaction (``BEGIN <mode>``) on the loop's own connection."""
        conn = self._inline_conns.get(mode)
        if conn is None:
            assert self._inline is not None
            conn = self._inline.connect().execution_options(polpo_begin=mode)
            self._inline_conns[mode] = conn
        try:
            with conn.begin():
                return fn(conn)
        except BaseException:
            del self._inline_conns[mode]
            with contextlib.suppress(Exception):
                conn.close()
            raise

    async def close(self) -> None:
        await self.wait_idle()
        for conn in self._inline_conns.values():
            conn.close()
        self._inline_conns.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for engine in (self._engine, self._inline):
            if engine is not None:
                engine.dispose()
        self._engine = self._inline = None

    async def _commit(self, steps: list[Step]) -> list[Any]:
        now = self.ctx.clock.now()
        origin = self.ctx.origin

        def run_all(conn: sa.Connection) -> tuple[list[Any], list[Event]]:
            tx = SyncTx(conn, now, origin)
            results = [step(tx) for step in steps]
            return results, commit_order_sync(conn, tx.events)  # final ids (PostgreSQL)

        if self._engine is not None and self._executor is not None and self._inline is not None:
            engine = self._engine

            def work(engine: sa.Engine = engine) -> tuple[list[Any], list[Event]]:
                with engine.connect() as conn:
                    conn = conn.execution_options(polpo_begin="IMMEDIATE")
                    with conn.begin():
                        return run_all(conn)

            # in-process writers take turns (the store serialises its own writes the same way)
            async with self.ctx.store._write_lock:
                try:
                    # On the loop itself: SQLite commits in WAL take tens of microseconds,
                    # far less than a hop to a thread. If another process holds the write
                    # lock, this fails at once (no busy wait on the loop) and the batch
                    # waits for the lock in the worker thread instead.
                    results, events = self._on_inline("IMMEDIATE", run_all)
                except sa.exc.OperationalError as e:
                    if not _is_busy(e):
                        raise
                    results, events = await asyncio.get_running_loop().run_in_executor(
                        self._executor, work
                    )
        else:
            async with self.ctx.store.write() as aconn:
                results, events = await aconn.run_sync(run_all)
        if events:
            await self.ctx.bus.publish(events)
        return results

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                results = await self._commit([step for step, _ in batch])
            except Exception as e:
                if len(batch) == 1:
                    _fail(batch[0][1], e)
                    continue
                log.debug("a batch of %d writes failed; retrying them one by one", len(batch))
                for step, fut in batch:
                    try:
                        [result] = await self._commit([step])
                    except Exception as e1:
                        _fail(fut, e1)
                    else:
                        self.transactions += 1
                        self.steps += 1
                        if not fut.done():
                            fut.set_result(result)
                continue
            self.transactions += 1
            self.steps += len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _is_busy(e: sa.exc.OperationalError) -> bool:
    text = str(e.orig).lower()
    return "locked" in text or "busy" in text


def _sqlite_engine(path: str, busy_timeout_ms: int) -> sa.Engine:
    """A synchronous engine on the store's SQLite file, set up as the store's own."""
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("polpo_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# -- SQL straight on the SQLite driver -----------------------------------------

_NAMED_SQLITE = sqlite_dialect.dialect(paramstyle="named")
_PLAIN: dict[tuple[int, frozenset[str]], _Plain | None] = {}


@dataclass(frozen=True)
class _Plain:
    statement: Any  # kept so that its id is never reused for another statement
    sql: str
    defaults: dict[str, Any]
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]


def execute(conn: sa.Connection, statement: Any, params: dict[str, Any]) -> Any:
    """``conn.execute(statement, params)``, on pysqlite straight on the driver.

    For the hottest short statements SQLAlchemy's per-call work costs several
    times SQLite's own. The statement is compiled once per set of parameter
    names and run on the DB-API connection of the current transaction, its
    parameters converted by the same bind processors Core would use; the
    result is a DB-API cursor (``rowcount``, ``fetchone``, ``fetchall`` of
    plain tuples). A statement with expanding parameters or result columns
    that need converting goes through Core, as does every other database.
    """
    if conn.dialect.driver != "pysqlite":
        return conn.execute(statement, params)
    key = (id(statement), frozenset(params))
    found = _PLAIN.get(key, _UNSET)
    if found is _UNSET:
        found = _PLAIN[key] = _compile_plain(statement, params)
    if found is None:
        return conn.execute(statement, params)
    values = {**found.defaults, **params} if found.defaults else dict(params)
    for name, process in found.processors:
        values[name] = process(values[name])
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi.execute(found.sql, values)


_UNSET: Any = object()


def _compile_plain(statement: Any, params: dict[str, Any]) -> _Plain | None:
    compiled = statement.compile(dialect=_NAMED_SQLITE, column_keys=list(params))
    if (
        "POSTCOMPILE" in compiled.string
        or compiled.escaped_bind_names
        or getattr(compiled, "insert_prefetch", None)
        or getattr(compiled, "update_prefetch", None)
        or getattr(compiled, "postfetch", None)
    ):
        return None  # Python-side defaults, expanding IN, odd names: Core knows how
    for column in getattr(compiled, "_result_columns", None) or ():
        if column[3]._cached_result_processor(_NAMED_SQLITE, None) is not None:
            return None
    defaults = {k: v for k, v in compiled.construct_params(params).items() if k not in params}
    return _Plain(statement, compiled.string, defaults, tuple(compiled._bind_processors.items()))
