"""The in-process event bus: glob subscriptions, queues, isolation of failures."""

from __future__ import annotations

import asyncio

import pytest

from polpo.core.events import EventBus
from polpo.core.models import Event


def ev(i: int, type_: str) -> Event:
    return Event(id=i, type=type_, payload={"n": i}, created_at=0.0, origin="test")


async def test_handlers_get_matching_events_until_unsubscribed() -> None:
    bus = EventBus()
    seen: list[str] = []

    async def handler(e: Event) -> None:
        seen.append(e.type)

    unsubscribe = bus.subscribe("task:*", handler)
    await bus.publish([ev(1, "task:created"), ev(2, "approval:requested"), ev(3, "task:done")])
    assert seen == ["task:created", "task:done"]
    unsubscribe()
    unsubscribe()  # twice is harmless
    await bus.publish([ev(4, "task:failed")])
    assert seen == ["task:created", "task:done"]


async def test_a_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[int] = []

    async def broken(e: Event) -> None:
        raise RuntimeError("boom")

    async def fine(e: Event) -> None:
        seen.append(e.id)

    bus.subscribe("*", broken)
    bus.subscribe("*", fine)
    await bus.publish([ev(1, "task:created")])
    assert seen == [1]
    assert "event handler failed" in caplog.text


async def test_queue_receives_and_drops_when_full() -> None:
    bus = EventBus()
    q, close = bus.queue("approval:*", maxsize=2)
    await bus.publish([ev(i, "approval:requested") for i in range(1, 5)])
    got = [q.get_nowait().id, q.get_nowait().id]
    assert got == [1, 2]
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    close()
    await bus.publish([ev(9, "approval:resolved")])
    assert q.empty()
