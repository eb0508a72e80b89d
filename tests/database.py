"""The suite on PostgreSQL: one throwaway schema (and login role) per test.

``POLPO_TEST_DATABASE_URL=postgresql://admin@host:port/db`` makes every test
open its store on PostgreSQL. Each test gets a role ``polpo_t_<hex>`` whose
own schema (same name) is first on its default search path, so the URL
alone — with that role's name and password — points a process at the
test's private schema; subprocesses (``polpo serve``, CLI runs) inherit it
through ``POLPO_DATABASE_URL``. The schema and the role are dropped after
the test, with any connection a stray process left open.

The admin connection lives on its own thread and event loop, so fixtures
(sync or async) can use it whatever loop the test runs on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from polpo.config import DATABASE_URL_ENV

TEST_URL_ENV = "POLPO_TEST_DATABASE_URL"

T = TypeVar("T")


def test_database_url() -> str | None:
    """The admin URL of the PostgreSQL server the suite should use, or None (SQLite)."""
    url = os.environ.get(TEST_URL_ENV, "").strip()
    return url or None


def on_postgres() -> bool:
    return test_database_url() is not None


class PgSchemas:
    """Creates and drops per-test schemas through one admin connection."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = sa.engine.make_url(admin_url)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="polpo-test-pg", daemon=True
        )
        self._thread.start()
        self._conn: Any = None
        import asyncpg  # now: a test may hide the module from the code under test

        self._asyncpg = asyncpg

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            dsn = self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = await self._asyncpg.connect(dsn)
            await self._conn.execute("SET lock_timeout = '60s'")
        return self._conn

    def create(self) -> tuple[str, str]:
        """A fresh empty schema; returns (its name, the URL that opens it)."""
        name = f"polpo_t_{secrets.token_hex(6)}"
        password = secrets.token_hex(12)

        async def go() -> None:
            conn = await self._connection()
            await conn.execute(
                f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}';"
                f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}";'
                f'ALTER ROLE "{name}" SET search_path = "{name}"'
            )

        self._run(go())
        url = self.admin_url.set(
            drivername="postgresql", username=name, password=password
        ).render_as_string(hide_password=False)
        return name, url

    def drop(self, name: str) -> None:
        async def go() -> None:
            conn = await self._connection()
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
            )
            await conn.execute(
                f'DROP SCHEMA IF EXISTS "{name}" CASCADE; DROP ROLE IF EXISTS "{name}"'
            )

        self._run(go())

    def close(self) -> None:
        async def go() -> None:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.close()

        try:
            self._run(go())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def project_store_url(root: Path) -> str:
    """The database a project under ``root`` uses in this test (what ``polpo`` would open)."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{root / '.polpo' / 'polpo.db'}"


def fetch_all(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one SQL query on ``url`` (SQLite or PostgreSQL), from synchronous test code."""
    from polpo.store import Store

    async def go() -> list[tuple[Any, ...]]:
        store = await Store.open(url, migrate=False)
        try:
            async with store.read() as conn:
                return [tuple(r) for r in (await conn.execute(sa.text(sql), params)).all()]
        finally:
            await store.close()

    return asyncio.run(go())
