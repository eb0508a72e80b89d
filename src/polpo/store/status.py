"""The reads behind ``/status``: counts, running tasks, channel states, recent peers.

Recent peers are read on the ``last_seen`` index, only those of the last
minutes, and kept in memory between reads (``services/status.StatusView``):
``/status`` runs for every command message of a busy gateway.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from polpo.core.models import Task
from polpo.store import records
from polpo.store.connection import Connection
from polpo.store.engine import upsert
from polpo.store.hot import Hot
from polpo.store.tables import approvals, channel_state, peers, tasks

_TASK_COUNTS = sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
_PENDING_APPROVALS = (
    sa.select(sa.func.count()).select_from(approvals).where(approvals.c.status == "pending")
)
_RUNNING_TASKS = (
    sa.select(tasks).where(tasks.c.status == "running").order_by(tasks.c.created_at, tasks.c.id)
)
_CHANNEL_STATES = sa.select(channel_state).order_by(channel_state.c.channel)
_SEEN_SINCE = Hot(
    sa.select(peers.c.id, peers.c.last_seen).where(peers.c.last_seen >= sa.bindparam("since")),
    ("since",),
)


async def task_counts(conn: Connection) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in (await conn.execute(_TASK_COUNTS)).all()}


async def pending_approvals(conn: Connection) -> int:
    return int(await conn.scalar(_PENDING_APPROVALS) or 0)


async def running_tasks(conn: Connection) -> list[Task]:
    return [records.task_from_row(r) for r in (await conn.execute(_RUNNING_TASKS)).all()]


async def channel_states(conn: Connection) -> list[Any]:
    """Rows of ``channel_state`` (channel, state, detail, account, updated_at, …)."""
    return list((await conn.execute(_CHANNEL_STATES)).all())


async def seen_since(conn: Connection, since: float) -> list[tuple[str, float]]:
    """(peer id, last seen) of every peer seen since ``since`` (on the ``last_seen`` index)."""
    return [(str(r[0]), float(r[1])) for r in (await _SEEN_SINCE.run(conn, {"since": since})).rows]


async def write_channel_state(
    conn: Connection,
    channel: str,
    state: str,
    detail: str | None,
    account: str | None,
    *,
    now: float,
    holder: str,
) -> None:
    # one statement: two processes reporting at once both succeed
    await conn.execute(
        upsert(
            conn.dialect.name,
            channel_state,
            ["channel"],
            ["state", "detail", "account", "updated_at", "holder"],
        ).values(
            channel=channel,
            state=state,
            detail=detail,
            account=account,
            updated_at=now,
            holder=holder,
        )
    )
