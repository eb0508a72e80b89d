"""What each real process does in the race tests (spawned: nothing shared but the database).

Every function runs in a fresh interpreter started by ``multiprocessing``'s
spawn context, so each opens its own engine and connections exactly as a
second ``polpo`` process would. The database comes from the inherited
``POLPO_DATABASE_URL`` (a PostgreSQL schema) or the project's SQLite file.
Results go back through a queue as plain tuples.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import traceback
from collections.abc import Callable, Coroutine
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

#: spawn: the children import everything afresh, like separate ``polpo`` commands
CTX = multiprocessing.get_context("spawn")


def run_processes(
    target: Callable[..., None], args_per_process: list[tuple[Any, ...]], *, timeout: float = 120
) -> list[Any]:
    """Start one process per argument tuple (each gets ``(barrier, results, *args)``).

    Waits for all of them; returns every item they put on the results queue.
    """
    barrier = CTX.Barrier(len(args_per_process))
    results: Queue[Any] = CTX.Queue()
    procs = [
        CTX.Process(target=target, args=(barrier, results, *args), daemon=True)
        for args in args_per_process
    ]
    for p in procs:
        p.start()
    out: list[Any] = []
    finished = 0
    while finished < len(procs):
        item = results.get(timeout=timeout)
        if item == ("finished",):
            finished += 1
        else:
            out.append(item)
    for p in procs:
        p.join(timeout=timeout)
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"
    return out


def _guarded(results: Queue[Any], coro: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(coro)
    except BaseException:
        results.put(("crashed", os.getpid(), traceback.format_exc()))
    finally:
        results.put(("finished",))


# -- migrations ----------------------------------------------------------------


def open_store(barrier: Barrier, results: Queue[Any], url: str) -> None:
    """Open (and so migrate) the database at the same moment as the others."""
    from polpo.store import Store

    async def go() -> None:
        barrier.wait()
        try:
            store = await Store.open(url)
        except Exception as e:
            results.put(("failed", str(e)))
            return
        await store.close()
        results.put(("opened",))

    _guarded(results, go())


# -- approvals -----------------------------------------------------------------


def decide(
    barrier: Barrier, results: Queue[Any], config: str, action: str, approval_ids: list[str]
) -> None:
    """For each approval in turn, in step with the other decider: approve (or reject) it."""
    from polpo.app import Polpo
    from polpo.config import load_config
    from polpo.errors import AlreadyDecidedError

    async def go() -> None:
        app = await Polpo.open(load_config(Path(config)))
        try:
            for approval_id in approval_ids:
                barrier.wait()
                try:
                    if action == "approve":
                        await app.approvals.approve(approval_id, by=f"{action}r")
                    else:
                        await app.approvals.reject(
                            approval_id, by=f"{action}r", feedback="not like this"
                        )
                except AlreadyDecidedError as e:
                    results.put((approval_id, action, "lost", e.message))
                else:
                    results.put((approval_id, action, "won", ""))
        finally:
            await app.close()

    _guarded(results, go())


# -- claims --------------------------------------------------------------------


def drain(barrier: Barrier, results: Queue[Any], config: str) -> None:
    """``polpo run`` in one process: drain the queue with a model that answers at once.

    The model also counts, while its task runs, how many of the agent's tasks
    are running in the database (every worker's): the peak goes back with the
    ids of the tasks this process finished.
    """
    import sqlalchemy as sa
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from polpo.app import Polpo
    from polpo.config import load_config
    from polpo.runner import Runner
    from polpo.store.tables import tasks

    peak = 0

    async def go() -> None:
        app = await Polpo.open(load_config(Path(config)))

        async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            nonlocal peak
            async with app.store.read() as conn:
                running = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(tasks)
                        .where(tasks.c.status == "running")
                    )
                ).scalar()
            peak = max(peak, int(running or 0))
            return ModelResponse(parts=[TextPart("done")])

        model = FunctionModel(answer)
        runner = Runner(app, model_factory=lambda agent, cfg: model)
        try:
            barrier.wait()
            report = await runner.drain()
            results.put(("ran", os.getpid(), [t.id for t in report.finished], peak))
        finally:
            runner.close()
            await app.close()

    _guarded(results, go())


# -- pairing -------------------------------------------------------------------


def approve_codes(
    barrier: Barrier, results: Queue[Any], config: str, by: str, codes: list[str]
) -> None:
    """For each pairing code in turn, in step with the other approver: approve it."""
    from polpo.app import Polpo
    from polpo.config import load_config
    from polpo.services.peers import PairingError

    async def go() -> None:
        app = await Polpo.open(load_config(Path(config)))
        try:
            for code in codes:
                barrier.wait()
                try:
                    await app.peers.approve_pairing(code, by=by)
                except PairingError as e:
                    results.put((code, by, "lost", e.message))
                else:
                    results.put((code, by, "won", ""))
        finally:
            await app.close()

    _guarded(results, go())
