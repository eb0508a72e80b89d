"""Tasks: creation rules, listing, cancel and retry through the state machine."""

from __future__ import annotations

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.errors import InvalidTransitionError, NotFoundError, ValidationError


async def test_add_defaults_to_the_first_agent_and_normalises_the_title(app: Polpo) -> None:
    task = await app.tasks.add("  Write \n the   docs ", description="all of them")
    assert task.title == "Write the docs"
    assert task.agent == "coder"
    assert task.status == "pending"
    assert task.created_by == "cli"
    assert len(task.id) == 16 and task.id.startswith(task.short_id)
    assert len(task.short_id) >= 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": "   "}, "needs a title"),
        ({"title": "x" * 201}, "at most 200"),
        ({"title": "ok", "agent": "ghost"}, "unknown agent 'ghost'; agents: coder, writer"),
        ({"title": "ok", "depends_on": ["zzzz"]}, "dependency: no task matches"),
        ({"title": "ok", "mission": "zzzz"}, "no mission matches"),
    ],
)
async def test_add_refuses_bad_input(app: Polpo, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValidationError, NotFoundError), match=message):
        await app.tasks.add(**kwargs)  # type: ignore[arg-type]
    assert await app.tasks.count() == 0


async def test_list_is_newest_first_with_filters(app: Polpo, clock: FakeClock) -> None:
    made = []
    for i in range(5):
        made.append(await app.tasks.add(f"task {i}", agent="writer" if i % 2 else "coder"))
        clock.advance(1)
    await app.tasks.cancel(made[0].id)
    titles = [t.title for t in await app.tasks.list()]
    assert titles == ["task 4", "task 3", "task 2", "task 1", "task 0"]
    assert [t.title for t in await app.tasks.list(limit=2)] == ["task 4", "task 3"]
    assert [t.title for t in await app.tasks.list(status=["cancelled"])] == ["task 0"]
    assert [t.title for t in await app.tasks.list(agent="writer")] == ["task 3", "task 1"]
    assert await app.tasks.count(status=["pending"]) == 4
    with pytest.raises(ValidationError, match="unknown task status 'todo'"):
        await app.tasks.list(status=["todo"])


async def test_cancel_is_final(app: Polpo) -> None:
    task = await app.tasks.add("Write code")
    cancelled = await app.tasks.cancel(task.short_id, reason="not needed")
    assert cancelled.status == "cancelled" and cancelled.error == "not needed"
    assert cancelled.finished_at is not None
    with pytest.raises(InvalidTransitionError, match="cancelled is final"):
        await app.tasks.cancel(task.id)
    with pytest.raises(InvalidTransitionError, match="only a failed task can be retried"):
        await app.tasks.retry(task.id)


async def test_retry_puts_a_failed_task_back(app: Polpo) -> None:
    task = await app.tasks.add("Write code")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, task, "running", lease_owner="w", lease_until=1e12)
    running = await app.tasks.get(task.id)
    # still leased by a live runner: no second copy
    with pytest.raises(InvalidTransitionError, match="only a failed task"):
        await app.tasks.retry(task.id)
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, running, "failed", error="boom")
    retried = await app.tasks.retry(task.id)
    assert (retried.status, retried.error, retried.finished_at) == ("pending", None, None)


async def test_a_crashed_run_can_be_retried(app: Polpo, clock: FakeClock) -> None:
    task = await app.tasks.add("Write code")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(
            tx, task, "running", lease_owner="dead", lease_until=clock.now() + 30
        )
    clock.advance(31)
    assert (await app.tasks.retry(task.id)).status == "pending"


async def test_dependencies_are_stored_as_full_ids(app: Polpo) -> None:
    first = await app.tasks.add("First")
    second = await app.tasks.add("Second", depends_on=[first.short_id, first.id])
    assert second.depends_on == [first.id]
