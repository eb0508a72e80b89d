"""Repository functions for tasks, missions, approvals and the event log.

Plain async functions over a connection, so a service composes several in
one transaction. Rows come back as the domain's dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from polpo import ids
from polpo.core.models import Approval, Event, Mission, Task
from polpo.errors import AmbiguousIdError, NotFoundError
from polpo.store.connection import Connection
from polpo.store.tables import approvals, events, missions, tasks

# -- ids -----------------------------------------------------------------------


async def new_short_id(conn: Connection, table: sa.Table, full_id: str) -> str:
    prefixes = [full_id[:n] for n in range(ids.MIN_PREFIX, len(full_id) + 1)]
    taken = set(
        (
            await conn.execute(sa.select(table.c.short_id).where(table.c.short_id.in_(prefixes)))
        ).scalars()
    )
    return ids.short_id_for(full_id, taken)


async def resolve_id(conn: Connection, table: sa.Table, ref: str, kind: str, label_col: str) -> str:
    """Resolve a full id, short id, or unique prefix (≥ 4 chars) to a full id."""
    r = ids.normalize_ref(ref)
    if len(r) < ids.MIN_PREFIX:
        raise NotFoundError(
            f"{kind} id {ref!r} is too short: give at least {ids.MIN_PREFIX} characters"
        )
    exact = (
        await conn.execute(
            sa.select(table.c.id).where(sa.or_(table.c.id == r, table.c.short_id == r))
        )
    ).scalar()
    if exact is not None:
        return str(exact)
    rows = (
        await conn.execute(
            sa.select(table.c.id, table.c.short_id, table.c[label_col])
            .where(table.c.id.like(_escape_like(r) + "%", escape="\\"))
            .order_by(table.c.id)
            .limit(11)
        )
    ).all()
    if not rows:
        raise NotFoundError(f"no {kind} matches {ref!r}")
    if len(rows) > 1:
        cands = [f"{row.id[: max(len(r) + 1, len(row.short_id))]} {row[2]}" for row in rows[:10]]
        more = " …" if len(rows) > 10 else ""
        raise AmbiguousIdError(
            f"{kind} id {ref!r} is ambiguous; it matches: " + "; ".join(cands) + more,
            [row.id for row in rows],
        )
    return str(rows[0].id)


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- tasks -----------------------------------------------------------------------


def task_from_row(row: Any) -> Task:
    m = row._mapping
    return Task(
        id=m["id"],
        short_id=m["short_id"],
        title=m["title"],
        description=m["description"] or "",
        agent=m["agent"],
        mission_id=m["mission_id"],
        position=m["position"] or 0,
        depends_on=list(m["depends_on"] or []),
        status=m["status"],
        awaiting=m["awaiting"],
        start_approved=bool(m["start_approved"]),
        result=m["result"],
        error=m["error"],
        revision_count=m["revision_count"] or 0,
        feedback=list(m["feedback"] or []),
        attempts=m["attempts"] or 0,
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
    )


async def get_task(conn: Connection, task_id: str, *, lock: bool = False) -> Task:
    """The task; with ``lock``, its row stays locked until the transaction ends.

    A write transaction that decides from what it reads locks first: on
    PostgreSQL a second writer then waits and reads the row as the first left
    it (SQLite's writers never overlap, so there is nothing to wait for).
    """
    q = sa.select(tasks).where(tasks.c.id == task_id)
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise NotFoundError(f"no task {task_id!r}")
    return task_from_row(row)


async def find_task(conn: Connection, ref: str, *, lock: bool = False) -> Task:
    return await get_task(conn, await resolve_id(conn, tasks, ref, "task", "title"), lock=lock)


async def list_tasks(
    conn: Connection,
    *,
    status: Sequence[str] | None = None,
    mission_id: str | None = None,
    agent: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    oldest_first: bool = False,
) -> list[Task]:
    q = sa.select(tasks)
    if status:
        q = q.where(tasks.c.status.in_(list(status)))
    if mission_id:
        q = q.where(tasks.c.mission_id == mission_id)
    if agent:
        q = q.where(tasks.c.agent == agent)
    if mission_id:
        q = q.order_by(tasks.c.position, tasks.c.created_at)
    elif oldest_first:
        q = q.order_by(tasks.c.created_at, tasks.c.id)
    else:
        q = q.order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
    if limit is not None:
        q = q.limit(limit).offset(offset)
    return [task_from_row(r) for r in (await conn.execute(q)).all()]


async def count_tasks(conn: Connection, *, status: Sequence[str] | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(tasks)
    if status:
        q = q.where(tasks.c.status.in_(list(status)))
    return int((await conn.execute(q)).scalar() or 0)


async def task_counts_by_status(conn: Connection) -> dict[str, int]:
    rows = (
        await conn.execute(sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status))
    ).all()
    return {r[0]: int(r[1]) for r in rows}


async def update_task(conn: Connection, task_id: str, **values: Any) -> None:
    await conn.execute(sa.update(tasks).where(tasks.c.id == task_id).values(**values))


async def move_task(conn: Connection, task_id: str, expected: str, **values: Any) -> bool:
    """Compare-and-set: update the task only while its status is still ``expected``.

    False when another transaction moved it first (the caller re-reads and
    reports what happened instead of overwriting it).
    """
    res = await conn.execute(
        sa.update(tasks).where(tasks.c.id == task_id, tasks.c.status == expected).values(**values)
    )
    return int(res.rowcount or 0) == 1


# -- missions --------------------------------------------------------------------


async def mission_from_row(conn: Connection, row: Any) -> Mission:
    m = row._mapping
    trows = (
        await conn.execute(
            sa.select(tasks.c.id, tasks.c.status)
            .where(tasks.c.mission_id == m["id"])
            .order_by(tasks.c.position, tasks.c.created_at)
        )
    ).all()
    return Mission(
        id=m["id"],
        short_id=m["short_id"],
        name=m["name"],
        goal=m["goal"] or "",
        status=m["status"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        finished_at=m["finished_at"],
        task_count=len(trows),
        done_count=sum(1 for t in trows if t.status == "done"),
        task_ids=[t.id for t in trows],
    )


async def get_mission(conn: Connection, mission_id: str, *, lock: bool = False) -> Mission:
    """The mission with its tasks' progress; ``lock`` as for :func:`get_task`."""
    q = sa.select(missions).where(missions.c.id == mission_id)
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise NotFoundError(f"no mission {mission_id!r}")
    return await mission_from_row(conn, row)


async def find_mission(conn: Connection, ref: str, *, lock: bool = False) -> Mission:
    return await get_mission(
        conn, await resolve_id(conn, missions, ref, "mission", "name"), lock=lock
    )


async def list_missions(
    conn: Connection, *, status: Sequence[str] | None = None, limit: int | None = None
) -> list[Mission]:
    q = sa.select(missions).order_by(missions.c.created_at.desc(), missions.c.id.desc())
    if status:
        q = q.where(missions.c.status.in_(list(status)))
    if limit is not None:
        q = q.limit(limit)
    return [await mission_from_row(conn, r) for r in (await conn.execute(q)).all()]


# -- approvals -------------------------------------------------------------------


def _approval_query() -> sa.Select[Any]:
    return sa.select(
        approvals, tasks.c.title.label("task_title"), tasks.c.short_id.label("task_short_id")
    ).join(tasks, tasks.c.id == approvals.c.task_id)


def approval_from_row(row: Any) -> Approval:
    m = row._mapping
    return Approval(
        id=m["id"],
        short_id=m["short_id"],
        gate=m["gate"],
        hook=m["hook"],
        task_id=m["task_id"],
        agent=m["agent"],
        status=m["status"],
        summary=m["summary"] or "",
        requested_at=m["requested_at"],
        expires_at=m["expires_at"],
        resolved_at=m["resolved_at"],
        resolved_by=m["resolved_by"],
        feedback=m["feedback"],
        task_title=m.get("task_title") or "",
        task_short_id=m.get("task_short_id") or "",
    )


async def get_approval(conn: Connection, approval_id: str, *, lock: bool = False) -> Approval:
    """The approval (with its task's title); ``lock`` locks the approval's row only."""
    q = _approval_query().where(approvals.c.id == approval_id)
    if lock:
        q = q.with_for_update(of=approvals)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFoundError(f"no approval {approval_id!r}")
    return approval_from_row(row)


async def find_approval(conn: Connection, ref: str) -> Approval:
    return await get_approval(conn, await resolve_id(conn, approvals, ref, "approval", "gate"))


async def list_approvals(
    conn: Connection,
    *,
    status: Sequence[str] | None = None,
    task_id: str | None = None,
    limit: int | None = None,
) -> list[Approval]:
    q = _approval_query()
    if status:
        q = q.where(approvals.c.status.in_(list(status)))
    if task_id:
        q = q.where(approvals.c.task_id == task_id)
    q = q.order_by(approvals.c.requested_at.desc(), approvals.c.id)
    if limit is not None:
        q = q.limit(limit)
    return [approval_from_row(r) for r in (await conn.execute(q)).all()]


# -- events ----------------------------------------------------------------------


def event_from_row(row: Any) -> Event:
    m = row._mapping
    return Event(
        id=m["id"],
        type=m["type"],
        payload=dict(m["payload"] or {}),
        created_at=m["created_at"],
        origin=m["origin"],
    )


async def append_event(
    conn: Connection, type_: str, payload: dict[str, Any], now: float, origin: str
) -> Event:
    res = await conn.execute(
        sa.insert(events)
        .values(type=type_, payload=payload, created_at=now, origin=origin)
        .returning(events.c.id)
    )
    return Event(
        id=int(res.scalar_one()), type=type_, payload=payload, created_at=now, origin=origin
    )


async def events_after(conn: Connection, after_id: int, limit: int = 500) -> list[Event]:
    rows = (
        await conn.execute(
            # bound as a 64-bit integer: any cursor a client sends compares (the column
            # is a 32-bit integer on PostgreSQL)
            sa.select(events)
            .where(events.c.id > sa.literal(after_id, sa.BigInteger))
            .order_by(events.c.id)
            .limit(limit)
        )
    ).all()
    return [event_from_row(r) for r in rows]


async def last_event_id(conn: Connection) -> int:
    return int((await conn.execute(sa.select(sa.func.max(events.c.id)))).scalar() or 0)
