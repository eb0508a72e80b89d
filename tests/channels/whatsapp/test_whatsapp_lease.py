"""The database lease: one process holds a WhatsApp account, even across machines.

Two stores on one SQLite file stand for two processes; the fake worker
stands for neonize; time moves by hand (FakeClock, gated sleeps).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from wa_support import Changes, ManualSleep, RecordingListener

from polpo.channels.whatsapp.account import AccountLock
from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.ownership import OwnershipOptions
from polpo.clock import FakeClock
from polpo.store import leases
from polpo.store.engine import PROCESS_ID, Store

Factory = Callable[..., WhatsAppChannel]
ELSEWHERE = "pid 99 on otherhost (polpo serve)"


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


def _runs(auth_dir: Path) -> int:
    return int((auth_dir / "fake_runs").read_text())


async def test_a_channel_waits_for_a_lease_held_elsewhere_then_takes_it_over(
    make_channel: Factory,
    listener: RecordingListener,
    changes: Changes,
    stores: tuple[Store, Store],
) -> None:
    mine, theirs = stores
    clock = FakeClock()
    other = await leases.acquire(theirs, "x", ELSEWHERE, now=clock.now(), ttl=60)
    assert other is not None
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel("ok", ownership=OwnershipOptions(store=mine), clock=clock, sleep=sleep)
    held = await leases.acquire(theirs, ch.lease_name, ELSEWHERE, now=clock.now(), ttl=60)
    assert held is not None
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "error" and len(sleep.delays) == 1)
    status = ch.status()
    assert f"held by {ELSEWHERE}" in (status.detail or "")
    assert status.extra["leaseHolder"] == ELSEWHERE
    assert status.extra["leaseExpiresAt"] == held.expires_at
    assert "workerPid" not in status.extra and ch.worker_pids == []
    # The other holder died: nobody renews; once the lease expires this one takes over.
    clock.advance(61)
    sleep.release()
    await changes.wait_for(lambda: ch.status().state == "connected")
    now_held = await leases.current(theirs, ch.lease_name)
    assert now_held is not None and now_held.holder == f"{PROCESS_ID} (polpo serve)"
    await ch.stop()
    assert await leases.current(theirs, ch.lease_name) is None  # given back on stop


async def test_a_second_channel_on_the_same_database_reports_the_holder(
    make_channel: Factory,
    listener: RecordingListener,
    changes: Changes,
    stores: tuple[Store, Store],
    auth_dir: Path,
) -> None:
    a, b = stores
    clock = FakeClock()
    first = make_channel(
        "ok",
        ownership=OwnershipOptions(store=a),
        clock=clock,
        sleep=ManualSleep(changes, gated=True),
    )
    await first.start(listener)
    await changes.wait_for(lambda: first.status().state == "connected")
    second_sleep = ManualSleep(changes, gated=True)
    second = make_channel(
        "ok",
        ownership=OwnershipOptions(store=b, holder="other serve"),
        clock=clock,
        sleep=second_sleep,
    )
    await second.start(RecordingListener(changes))
    await changes.wait_for(lambda: second.status().state == "error")
    assert f"held by {PROCESS_ID} (polpo serve)" in (second.status().detail or "")
    assert second.worker_pids == [] and _runs(auth_dir) == 1
    # The first stops (gives the lease back): the second's next try takes it.
    await first.stop()
    second_sleep.release()
    await changes.wait_for(lambda: second.status().state == "connected")
    held = await leases.current(a, second.lease_name)
    assert held is not None and held.holder == f"{PROCESS_ID} (other serve)"


async def test_a_lost_lease_stops_the_worker(
    make_channel: Factory,
    listener: RecordingListener,
    changes: Changes,
    stores: tuple[Store, Store],
    auth_dir: Path,
) -> None:
    mine, theirs = stores
    clock = FakeClock()
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel(
        "ok",
        ownership=OwnershipOptions(store=mine, lease_ttl=60, lease_renew=20),
        clock=clock,
        sleep=sleep,
    )
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected" and len(sleep.delays) == 1)
    assert sleep.delays == [20]  # the renewal waits its interval
    # This process stalled past its lease; another took it meanwhile.
    clock.advance(61)
    assert await leases.acquire(theirs, ch.lease_name, ELSEWHERE, now=clock.now(), ttl=60)
    sleep.release()  # the renewal runs, finds the lease lost
    await changes.wait_for(lambda: ch.status().state == "error")
    assert f"held by {ELSEWHERE}" in (ch.status().detail or "")
    assert "workerPid" not in ch.status().extra
    held = await leases.current(mine, ch.lease_name)
    assert held is not None and held.holder == ELSEWHERE  # no fight: still theirs
    with AccountLock(auth_dir, "the new holder"):  # the credentials are free for it
        pass
    await ch.stop()  # stopping does not give back a lease that is not ours
    held = await leases.current(mine, ch.lease_name)
    assert held is not None and held.holder == ELSEWHERE


async def test_renewals_keep_the_lease(
    make_channel: Factory,
    listener: RecordingListener,
    changes: Changes,
    stores: tuple[Store, Store],
) -> None:
    mine, theirs = stores
    clock = FakeClock()
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel(
        "ok",
        ownership=OwnershipOptions(store=mine, lease_ttl=60, lease_renew=20),
        clock=clock,
        sleep=sleep,
    )
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().state == "connected" and len(sleep.delays) == 1)
    for n in range(2, 6):  # 80 s: past the first expiry
        clock.advance(20)
        sleep.release()
        await changes.wait_for(lambda n=n: len(sleep.delays) == n)
    assert await leases.acquire(theirs, ch.lease_name, ELSEWHERE, now=clock.now(), ttl=60) is None
    assert ch.status().state == "connected"


async def test_a_lease_left_by_a_crashed_serve_on_this_machine_is_taken_over_at_once(
    make_channel: Factory,
    listener: RecordingListener,
    changes: Changes,
    stores: tuple[Store, Store],
) -> None:
    import asyncio
    import socket
    import sys

    mine, theirs = stores
    clock = FakeClock()
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # a process of this machine that is no more
    dead = f"pid {gone.pid} on {socket.gethostname()} (polpo serve)"
    sleep = ManualSleep(changes, gated=True)
    ch = make_channel("ok", ownership=OwnershipOptions(store=mine), clock=clock, sleep=sleep)
    assert await leases.acquire(theirs, ch.lease_name, dead, now=clock.now(), ttl=60)
    await ch.start(listener)
    # not a minute later: now (the gated sleep was never released for a retry)
    await changes.wait_for(lambda: ch.status().state == "connected")
    held = await leases.current(theirs, ch.lease_name)
    assert held is not None and held.holder == f"{PROCESS_ID} (polpo serve)"
    # a holder that is alive, or elsewhere, is waited for as before
    alive = f"pid {os.getpid()} on {socket.gethostname()} (polpo serve)"
    from polpo.channels.whatsapp.ownership import holder_is_dead

    assert not holder_is_dead(alive) and not holder_is_dead(ELSEWHERE)
    assert holder_is_dead(dead)
