"""Waking up when another process commits events: PostgreSQL LISTEN/NOTIFY.

A commit that wrote events sends ``NOTIFY polpo_events`` (see
:mod:`polpo.store.event_order`). :class:`EventSignal` keeps one dedicated
connection listening on that channel, so the event tail of ``polpo serve``
reads the log as soon as another node (or a CLI command) commits, instead
of at its next poll. The poll stays as a fallback: a lost listening
connection, or a server that cannot LISTEN (a pooler in transaction mode),
only makes readers as slow as their poll interval. On SQLite there is
nothing to listen to and :meth:`EventSignal.wait` simply waits the
seconds out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa

from polpo.store.engine import Store
from polpo.store.event_order import EVENTS_CHANNEL

log = logging.getLogger(__name__)


class EventSignal:
    """``await signal.wait(seconds)``: returns early when events were committed elsewhere."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._woken = asyncio.Event()
        self._conn: Any = None
        self._failed = False

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Start listening (PostgreSQL); a failure is logged once and polling goes on."""
        if self.store.is_sqlite or self.listening:
            return
        try:
            import asyncpg

            url = sa.engine.make_url(self.store.url).set(drivername="postgresql")
            self._conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            await self._conn.add_listener(EVENTS_CHANNEL, self._notified)
            self._failed = False
        except Exception as e:
            if not self._failed:
                log.warning("cannot LISTEN for new events (%s); polling instead", e)
            self._failed = True
            await self._close_conn()

    def _notified(self, *_args: Any) -> None:
        self._woken.set()

    async def wait(self, seconds: float) -> bool:
        """Until a notification or ``seconds`` have passed; True when notified."""
        if not self.store.is_sqlite and not self.listening:
            await self.start()  # (re)connect after a lost connection
        try:
            await asyncio.wait_for(self._woken.wait(), seconds)
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    async def close(self) -> None:
        await self._close_conn()

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
