"""Event readers never skip an event whose id was taken first but committed last.

Two writers (two stores: separate engines and connections, as two processes
have) interleave on purpose: A writes its event and keeps its transaction
open, B writes and commits, the reader reads (it sees B's), then A commits.
With ids handed out at insert time the reader's cursor would already be past
A's id; ids given in commit order (``polpo.store.event_order``) make the
reader see A's event next. Only PostgreSQL lets two writers overlap like
this: SQLite's writers take turns.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import LoadedConfig, load_config
from polpo.core.events import EventBus
from polpo.core.models import Event
from polpo.notifications import Notifier
from polpo.services.events import EventTail
from polpo.store.records import last_event_id
from polpo.store.tables import outbox
from tests.api.conftest import bearer, running_api
from tests.runner.conftest import write_config

pytestmark = pytest.mark.postgres_only(reason="only PostgreSQL lets two writers overlap")


@asynccontextmanager
async def writers(
    loaded: LoadedConfig, bus: EventBus | None = None
) -> AsyncIterator[tuple[Polpo, Polpo]]:
    a = await Polpo.open(loaded, bus=bus)
    b = await Polpo.open(loaded, bus=bus)
    a.ctx.origin, b.ctx.origin = "writer A", "writer B"
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_the_event_tail_sees_an_event_committed_after_a_later_one(
    app: Polpo, loaded: LoadedConfig
) -> None:
    tail = EventTail(app.store, app.bus, "the reader")
    await tail.start_at_end()
    seen: list[str] = []

    async def record(e: Event) -> None:
        seen.append(e.type)

    app.bus.subscribe("test:*", record)
    async with writers(loaded) as (a, b):
        async with a.ctx.tx() as tx_a:
            await tx_a.emit("test:taken-first", {})
            async with b.ctx.tx() as tx_b:
                await tx_b.emit("test:committed-first", {})
            assert await tail.poll_once() == 1
        assert await tail.poll_once() == 1
        assert [e.id for e in tx_a.events] > [e.id for e in tx_b.events]
    assert seen == ["test:committed-first", "test:taken-first"]


async def test_the_notifier_alerts_for_an_event_committed_after_a_later_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write_config(
        tmp_path / "proj",
        notifications={
            "channels": {"telegram": {"type": "telegram", "gateway": {"allowFrom": ["123"]}}},
            "rules": [{"events": ["channel:connected"], "channels": ["telegram"]}],
        },
    )
    loaded = load_config(path)
    reader = await Polpo.open(loaded, clock=clock)
    notifier = Notifier(reader)
    try:
        async with writers(loaded) as (a, b):
            for w in (a, b):
                w.ctx.clock = clock
            async with a.ctx.tx() as tx_a:
                await tx_a.emit("channel:connected", {"channel": "taken-first"})
                async with b.ctx.tx() as tx_b:
                    await tx_b.emit("channel:connected", {"channel": "committed-first"})
                assert await notifier.process() == 1
            assert await notifier.process() == 1
        async with reader.store.read() as conn:
            texts = [
                r.text for r in (await conn.execute(sa.select(outbox).order_by(outbox.c.id))).all()
            ]
        assert len(texts) == 2
        assert "committed-first" in texts[0] and "taken-first" in texts[1]
    finally:
        await reader.close()


async def test_the_sse_stream_sends_an_event_committed_after_a_later_one(
    app: Polpo, loaded: LoadedConfig
) -> None:
    async with app.store.read() as conn:
        start = await last_event_id(conn)
    # the writers publish on the API's bus (as the event tail would): it wakes the stream
    async with (
        writers(loaded, bus=app.bus) as (a, b),
        running_api(app) as server,
        httpx.AsyncClient(
            base_url=server.url + "/api/v1", timeout=10, headers=bearer(server)
        ) as client,
        client.stream("GET", "/events", params={"after": start, "types": "test:*"}) as r,
    ):
        lines = r.aiter_lines()

        async def next_event() -> tuple[int, str]:
            event_id = 0
            async for line in lines:
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    return event_id, json.loads(line[6:])["type"]
            raise AssertionError("the stream ended")

        async with a.ctx.tx() as tx_a:
            await tx_a.emit("test:taken-first", {})
            async with b.ctx.tx() as tx_b:
                await tx_b.emit("test:committed-first", {})
            first = await asyncio.wait_for(next_event(), 10)
        second = await asyncio.wait_for(next_event(), 10)
    assert [first[1], second[1]] == ["test:committed-first", "test:taken-first"]
    assert first[0] < second[0]  # a reconnect with Last-Event-ID resumes after both


async def test_serve_reads_another_process_event_when_notified_not_at_its_poll(
    app: Polpo, loaded: LoadedConfig
) -> None:
    tail = EventTail(app.store, app.bus, "the reader", interval=3600)  # the poll never comes
    await tail.start_at_end()
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def record(e: Event) -> None:
        arrived.put_nowait(e.type)

    app.bus.subscribe("test:*", record)
    running = asyncio.create_task(tail.run())
    try:
        async with writers(loaded) as (a, _b):
            async with a.ctx.tx() as tx:
                await tx.emit("test:one", {})
            # the tail's first pass may have read this one; the next can only come by NOTIFY
            assert await asyncio.wait_for(arrived.get(), 10) == "test:one"
            async with a.ctx.tx() as tx:
                await tx.emit("test:two", {})
            assert await asyncio.wait_for(arrived.get(), 10) == "test:two"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
