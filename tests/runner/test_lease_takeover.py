"""Taking over a run whose lease ran out is a compare-and-set on the lease as it was read.

Between the recovering runner's read (lease expired) and its write, the
running one may renew its lease (a late heartbeat: it is alive after all).
The takeover names the lease it read, so it then changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from polpo.clock import FakeClock
from polpo.services.context import Tx
from tests.runner.conftest import OpenProject, Script, make_runner


async def test_a_lease_renewed_after_it_was_read_as_expired_is_not_taken_over(
    open_project: OpenProject, clock: FakeClock
) -> None:
    app1 = await open_project()
    app2 = await open_project()  # the recovering runner: another process
    task = await app1.tasks.add("Long job", agent="coder")
    started, release = asyncio.Event(), asyncio.Event()

    async def stuck(messages: list[Any]) -> str:
        started.set()
        await release.wait()
        return "done after all"

    alive = make_runner(app1, Script([stuck]))
    await alive.tick()
    await asyncio.wait_for(started.wait(), 5)
    clock.advance(120)  # its lease has run out: the recovering runner reads it so

    opened = app2.ctx.tx

    @asynccontextmanager
    async def tx_after_a_heartbeat() -> AsyncIterator[Tx]:
        await alive.heartbeat()  # …and the heartbeat lands just before its write
        async with opened() as tx:
            yield tx

    app2.ctx.tx = tx_after_a_heartbeat  # type: ignore[method-assign]
    recovering = make_runner(app2, Script(["unused"]))
    assert await recovering.recover() == []
    app2.ctx.tx = opened  # type: ignore[method-assign]

    still = await app1.tasks.get(task.id)
    assert (still.status, still.lease_owner) == ("running", alive.worker)
    release.set()
    await alive.wait_idle()
    assert (await app1.tasks.get(task.id)).status == "done"
    alive.close()
    recovering.close()
