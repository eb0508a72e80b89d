"""Leases on one real database (SQLite file or PostgreSQL schema) shared by two stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from polpo.clock import FakeClock
from polpo.store import leases
from polpo.store.engine import Store

NAME = "whatsapp:/srv/auth"
TTL = 60.0


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    url = database_url
    a = await Store.open(url)
    b = await Store.open(url)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_only_one_process_holds_the_lease(stores: tuple[Store, Store]) -> None:
    a, b = stores
    clock = FakeClock()
    got = await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    assert got is not None and got.holder == "proc A"
    assert got.expires_at == clock.now() + TTL
    assert await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL) is None
    held = await leases.current(b, NAME)
    assert held is not None
    assert (held.holder, held.expires_at) == ("proc A", clock.now() + TTL)
    # a different resource is independent
    assert await leases.acquire(b, "whatsapp:/other", "proc B", now=clock.now(), ttl=TTL)


async def test_the_holder_reacquires_and_keeps_acquired_at(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    clock = FakeClock()
    first = await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    clock.advance(30)
    again = await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    assert first is not None and again is not None
    assert again.acquired_at == first.acquired_at
    assert again.expires_at == clock.now() + TTL


async def test_an_expired_lease_is_taken_over(stores: tuple[Store, Store]) -> None:
    a, b = stores
    clock = FakeClock()
    assert await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    clock.advance(TTL - 1)
    assert await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL) is None
    clock.advance(1)  # expires_at <= now: expired
    took = await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL)
    assert took is not None
    assert (took.holder, took.acquired_at) == ("proc B", clock.now())
    # the old holder finds out on its next renewal, and cannot take it back
    assert await leases.renew(a, NAME, "proc A", now=clock.now(), ttl=TTL) is False
    assert await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL) is None


async def test_renew_extends_only_the_holders_lease(stores: tuple[Store, Store]) -> None:
    a, b = stores
    clock = FakeClock()
    assert await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    clock.advance(50)
    assert await leases.renew(a, NAME, "proc A", now=clock.now(), ttl=TTL) is True
    clock.advance(50)  # past the first expiry, within the renewed one
    assert await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL) is None
    assert await leases.renew(b, NAME, "proc B", now=clock.now(), ttl=TTL) is False
    held = await leases.current(a, NAME)
    assert held is not None and held.holder == "proc A"


async def test_release_only_by_the_holder(stores: tuple[Store, Store]) -> None:
    a, b = stores
    clock = FakeClock()
    assert await leases.acquire(a, NAME, "proc A", now=clock.now(), ttl=TTL)
    assert await leases.release(b, NAME, "proc B") is False
    assert await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL) is None
    assert await leases.release(a, NAME, "proc A") is True
    assert await leases.current(a, NAME) is None
    assert await leases.acquire(b, NAME, "proc B", now=clock.now(), ttl=TTL) is not None
    assert await leases.release(a, NAME, "proc A") is False


async def test_acquire_rejects_a_non_positive_ttl(stores: tuple[Store, Store]) -> None:
    with pytest.raises(ValueError, match="positive ttl"):
        await leases.acquire(stores[0], NAME, "proc A", now=0.0, ttl=0)


async def test_racing_processes_never_both_get_it(stores: tuple[Store, Store]) -> None:
    a, b = stores
    clock = FakeClock()
    for round_ in range(5):
        name = f"race:{round_}"
        got = await asyncio.gather(
            *(
                leases.acquire(store, name, f"proc {i}", now=clock.now(), ttl=TTL)
                for i, store in enumerate([a, b, a, b])
            )
        )
        winners = {lease.holder for lease in got if lease is not None}
        assert len(winners) == 1
        held = await leases.current(a, name)
        assert held is not None and {held.holder} == winners
