"""Lanes and the per-person lock, without a database: order, concurrency, limits, failures."""

from __future__ import annotations

import asyncio

import pytest

from polpo.gateway.lanes import KeyedLock, Lanes


async def test_one_key_runs_in_order_one_at_a_time() -> None:
    done: list[int] = []
    running = 0
    most = 0

    async def run(item: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        done.append(item)
        running -= 1

    lanes: Lanes[int] = Lanes(run, limit=10)
    for i in range(20):
        lanes.push("a", i)
    assert lanes.busy("a") and lanes.outstanding == 20
    await lanes.wait_idle(5)
    assert done == list(range(20))
    assert most == 1
    assert not lanes.busy("a") and lanes.outstanding == 0


async def test_keys_run_concurrently_up_to_the_limit() -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def run(key: str) -> None:
        started.append(key)
        await gate.wait()

    lanes: Lanes[str] = Lanes(run, limit=2)
    for key in ("a", "b", "c"):
        lanes.push(key, key)
    for _ in range(10):
        await asyncio.sleep(0)
    assert started == ["a", "b"]  # "c" waits for a free slot
    gate.set()
    await lanes.wait_idle(5)
    assert started == ["a", "b", "c"]


async def test_a_failing_item_does_not_stop_its_lane() -> None:
    done: list[int] = []

    async def run(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        done.append(item)

    lanes: Lanes[int] = Lanes(run, limit=1)
    for i in range(3):
        lanes.push("a", i)
    await lanes.wait_idle(5)
    assert done == [0, 2]


async def test_cancel_drops_queued_items_and_becomes_idle() -> None:
    gate = asyncio.Event()
    done: list[int] = []

    async def run(item: int) -> None:
        await gate.wait()
        done.append(item)

    lanes: Lanes[int] = Lanes(run, limit=4)
    lanes.push("a", 1)
    lanes.push("a", 2)
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await lanes.wait_idle(0.01)
    await lanes.cancel()
    assert done == []
    assert not lanes.busy("a") and lanes.outstanding == 0
    await lanes.wait_idle(1)


async def test_pushing_after_a_lane_emptied_starts_it_again() -> None:
    done: list[str] = []

    async def run(item: str) -> None:
        done.append(item)

    lanes: Lanes[str] = Lanes(run, limit=1)
    lanes.push("a", "first")
    await lanes.wait_idle(5)
    lanes.push("a", "second")
    await lanes.wait_idle(5)
    assert done == ["first", "second"]


async def test_keyed_lock_serialises_one_key_and_forgets_it_after() -> None:
    lock = KeyedLock()
    order: list[str] = []

    async def hold(name: str, key: str) -> None:
        async with lock.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"{name}-")

    await asyncio.gather(hold("x", "p"), hold("y", "p"), hold("z", "q"))
    assert order.index("x-") < order.index("y+")  # same key: one after the other
    assert order.index("z+") < order.index("x-")  # other key: at the same time
    assert len(lock) == 0
