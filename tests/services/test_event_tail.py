"""Events written by another process reach this process's bus through the tail."""

from __future__ import annotations

from polpo.app import Polpo
from polpo.config import LoadedConfig
from polpo.core.models import Event
from polpo.services.events import EventTail


async def test_tail_publishes_only_foreign_events(app: Polpo, loaded: LoadedConfig) -> None:
    await app.tasks.add("before the tail started")
    tail = EventTail(app.store, app.bus, app.ctx.origin)
    await tail.start_at_end()
    seen: list[Event] = []

    async def handler(e: Event) -> None:
        seen.append(e)

    app.bus.subscribe("*", handler)
    other = await Polpo.open(loaded)  # a CLI process: same file, another origin
    other.ctx.origin = "pid 1 on elsewhere"
    try:
        task = await other.tasks.add("from the CLI")
        await app.tasks.add("from here")  # published directly, not again by the tail
        assert [e.payload["title"] for e in seen] == ["from here"]
        assert await tail.poll_once() == 1
        assert [e.payload["title"] for e in seen] == ["from here", "from the CLI"]
        assert seen[-1].payload["taskId"] == task.id
        assert await tail.poll_once() == 0
    finally:
        await other.close()
