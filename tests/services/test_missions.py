"""Missions: plans, start/cancel, and the roll-up of their tasks' states."""

from __future__ import annotations

import pytest

from polpo.app import Polpo
from polpo.errors import InvalidTransitionError, ValidationError
from polpo.services.missions import PlannedTask


async def test_add_with_a_plan_keeps_its_order(app: Polpo) -> None:
    plan = [
        PlannedTask("Design"),
        PlannedTask("Build", agent="coder", depends_on=(0,)),
        PlannedTask("Write docs", agent="writer", depends_on=(0, 1)),
    ]
    m = await app.missions.add("Launch", goal="ship v1", plan=plan)
    assert (m.status, m.task_count, m.done_count, m.progress) == ("draft", 3, 0, "0/3")
    tasks = await app.missions.tasks_of(m.short_id)
    assert [t.title for t in tasks] == ["Design", "Build", "Write docs"]
    assert [t.position for t in tasks] == [0, 1, 2]
    assert tasks[2].depends_on == [tasks[0].id, tasks[1].id]
    assert tasks[2].agent == "writer" and tasks[0].agent == "coder"
    listed = await app.tasks.list(mission=m.short_id)
    assert [t.title for t in listed] == ["Design", "Build", "Write docs"]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([PlannedTask("a", depends_on=(0,))], "task 1: may only depend on earlier tasks"),
        ([PlannedTask("a"), PlannedTask("b", depends_on=(5,))], "task 2: may only depend"),
        ([PlannedTask("a", agent="ghost")], "task 1: unknown agent 'ghost'"),
        ([PlannedTask("  ")], "task 1: a task needs a title"),
    ],
)
async def test_bad_plans_are_refused(app: Polpo, plan: list[PlannedTask], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await app.missions.add("M", plan=plan)
    assert await app.missions.list() == []


async def test_start_needs_tasks_and_cancel_stops_them(app: Polpo) -> None:
    empty = await app.missions.add("Empty")
    with pytest.raises(ValidationError, match="has no tasks yet"):
        await app.missions.start(empty.id)
    m = await app.missions.add("M", plan=[PlannedTask("a"), PlannedTask("b")])
    started = await app.missions.start(m.short_id)
    assert started.status == "active"
    with pytest.raises(InvalidTransitionError, match="is active; it cannot become active"):
        await app.missions.start(m.id)
    cancelled = await app.missions.cancel(m.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert {t.status for t in await app.missions.tasks_of(m.id)} == {"cancelled"}
    with pytest.raises(InvalidTransitionError, match="cancelled is final"):
        await app.missions.cancel(m.id)
    with pytest.raises(ValidationError, match="takes no new tasks"):
        await app.tasks.add("late", mission=m.id)


async def _finish(app: Polpo, task_id: str, status: str) -> None:
    task = await app.tasks.get(task_id)
    async with app.ctx.tx() as tx:
        task = await app.tasks.transition(tx, task, "running")
        await app.tasks.transition(tx, task, status)


async def test_mission_completes_when_its_tasks_are_done(app: Polpo) -> None:
    m = await app.missions.add("M", plan=[PlannedTask("a"), PlannedTask("b")], activate=True)
    a, b = await app.missions.tasks_of(m.id)
    await _finish(app, a.id, "done")
    assert (await app.missions.get(m.id)).status == "active"
    await _finish(app, b.id, "done")
    done = await app.missions.get(m.id)
    assert (done.status, done.progress) == ("completed", "2/2")


async def test_mission_fails_then_restarts_its_failed_tasks(app: Polpo) -> None:
    m = await app.missions.add("M", plan=[PlannedTask("a"), PlannedTask("b")], activate=True)
    a, b = await app.missions.tasks_of(m.id)
    await _finish(app, a.id, "done")
    await _finish(app, b.id, "failed")
    assert (await app.missions.get(m.id)).status == "failed"
    restarted = await app.missions.start(m.id)
    assert restarted.status == "active"
    statuses = [t.status for t in await app.missions.tasks_of(m.id)]
    assert statuses == ["done", "pending"]


async def test_tasks_join_a_mission_at_the_end_of_its_plan(app: Polpo) -> None:
    m = await app.missions.add("M", plan=[PlannedTask("a")])
    extra = await app.tasks.add("b", mission=m.short_id)
    assert extra.mission_id == m.id and extra.position == 1
    assert (await app.missions.get(m.id)).task_count == 2
