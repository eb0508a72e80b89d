"""The runner end to end: real pydantic-ai agent loops (FunctionModel) on projects on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.runner import Runner
from polpo.runner.runner import owner_is_dead
from polpo.services.missions import PlannedTask
from polpo.store.tables import events, task_runs, tasks
from tests.runner.conftest import OpenProject, Script, make_runner

WRITE_HELLO = Script(
    [[("write_file", {"path": "src/hello.txt", "content": "hello\n"})], "wrote it"]
)


async def runs_of(app: Polpo, task_id: str) -> list[Any]:
    async with app.store.read() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(task_runs)
                    .where(task_runs.c.task_id == task_id)
                    .order_by(task_runs.c.id)
                )
            ).all()
        )


async def event_count(app: Polpo, type_: str, task_id: str) -> int:
    async with app.store.read() as conn:
        rows = (await conn.execute(sa.select(events.c.payload).where(events.c.type == type_))).all()
    return sum(1 for r in rows if r[0].get("taskId") == task_id)


async def test_a_task_runs_and_its_file_change_lands_in_the_project(
    open_project: OpenProject, root: Path
) -> None:
    app = await open_project()
    task = await app.tasks.add("Say hello", description="Create src/hello.txt", agent="coder")
    script = Script(
        [[("write_file", {"path": "src/hello.txt", "content": "hello\n"})], "Created src/hello.txt"]
    )
    runner = make_runner(app, script)

    report = await runner.drain()

    assert (root / "src" / "hello.txt").read_text() == "hello\n"
    done = await app.tasks.get(task.id)
    assert done.status == "done"
    assert done.result == "Created src/hello.txt"
    assert done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    assert [t.id for t in report.finished] == [task.id]
    # the agent got its system prompt, role and the task
    assert "Say hello" in script.prompts[0] and "Create src/hello.txt" in script.prompts[0]
    (run,) = await runs_of(app, task.id)
    assert run.status == "done" and run.result == "Created src/hello.txt"
    assert run.finished_at is not None and run.started_at is not None
    tool = run.transcript[0]
    assert tool["tool"] == "write_file" and tool["status"] == "ok"
    assert tool["args"]["path"] == "src/hello.txt"
    assert "created src/hello.txt" in tool["output"]
    assert run.transcript[-1]["type"] == "usage" and run.transcript[-1]["requests"] == 2
    assert await event_count(app, "task:started", task.id) == 1
    assert await event_count(app, "task:done", task.id) == 1


async def test_the_agents_instructions_carry_role_and_system_prompt(
    open_project: OpenProject,
) -> None:
    app = await open_project()
    seen: list[str] = []

    def capture(messages: list[Any]) -> str:
        seen.append(str(messages[0].instructions))
        return "ok"

    await app.tasks.add("Anything", agent="coder")
    await make_runner(app, Script([capture])).drain()
    assert "coder" in seen[0] and "Senior engineer" in seen[0]
    assert "Write small, clean changes." in seen[0]


async def test_a_start_gate_holds_the_task_until_approved(
    open_project: OpenProject, root: Path
) -> None:
    app = await open_project(
        approvalGates=[{"name": "plan", "hook": "task:start", "agents": ["coder"]}]
    )
    task = await app.tasks.add("Say hello", agent="coder")
    script = Script([[("write_file", {"path": "hello.txt", "content": "hi"})], "done"])
    runner = make_runner(app, script)

    report = await runner.drain()

    held = await app.tasks.get(task.id)
    assert held.status == "awaiting_approval" and held.awaiting == "task:start"
    assert script.requests == 0 and not (root / "hello.txt").exists()
    assert [t.id for t in report.awaiting] == [task.id]
    (approval,) = await app.approvals.list(status=["pending"])
    assert approval.hook == "task:start" and approval.task_id == task.id

    # a second drain does not ask again
    await runner.drain()
    assert len(await app.approvals.list(status=None)) == 1

    await app.approvals.approve(approval.short_id, by="telegram:42")
    await runner.drain()

    assert (await app.tasks.get(task.id)).status == "done"
    assert (root / "hello.txt").read_text() == "hi"


async def test_a_start_gate_only_applies_to_its_agents(open_project: OpenProject) -> None:
    app = await open_project(
        approvalGates=[{"name": "plan", "hook": "task:start", "agents": ["writer"]}]
    )
    task = await app.tasks.add("Fix it", agent="coder")
    await make_runner(app, Script(["fixed"])).drain()
    assert (await app.tasks.get(task.id)).status == "done"


async def test_rejecting_at_start_cancels_with_the_feedback_recorded(
    open_project: OpenProject,
) -> None:
    app = await open_project(approvalGates=[{"name": "plan", "hook": "task:start"}])
    task = await app.tasks.add("Drop the database", agent="coder")
    script = Script(["dropped"])
    runner = make_runner(app, script)
    await runner.drain()
    (approval,) = await app.approvals.list()

    await app.approvals.reject(approval.short_id, by="whatsapp:39123", feedback="never in prod")
    await runner.drain()

    cancelled = await app.tasks.get(task.id)
    assert cancelled.status == "cancelled"
    assert "never in prod" in (cancelled.error or "")
    assert cancelled.feedback[-1]["feedback"] == "never in prod"
    assert script.requests == 0


async def test_complete_gate_rejections_rerun_with_feedback_then_fail(
    open_project: OpenProject,
) -> None:
    app = await open_project(
        approvalGates=[
            {"name": "review", "hook": "task:complete", "agents": ["coder"], "maxRevisions": 2}
        ]
    )
    task = await app.tasks.add("Write the parser", agent="coder")
    answers = iter(["first try", "second try", "third try", "fourth try"])
    script = Script([lambda messages: next(answers)])
    runner = make_runner(app, script)

    await runner.drain()
    held = await app.tasks.get(task.id)
    assert held.status == "awaiting_approval" and held.awaiting == "task:complete"
    assert held.result == "first try"
    (a1,) = await app.approvals.list()
    assert a1.summary == "first try"

    await app.approvals.reject(a1.short_id, by="cli", feedback="add unit tests")
    await runner.drain()
    assert "add unit tests" in script.prompts[1]
    assert "first try" in script.prompts[1]  # the previous result is shown too
    assert (await app.tasks.get(task.id)).revision_count == 1

    (a2,) = await app.approvals.list()
    await app.approvals.reject(a2.short_id, by="cli", feedback="handle empty input")
    await runner.drain()
    assert "add unit tests" in script.prompts[2] and "handle empty input" in script.prompts[2]

    (a3,) = await app.approvals.list()
    await app.approvals.reject(a3.short_id, by="cli", feedback="still wrong")
    await runner.drain()

    failed = await app.tasks.get(task.id)
    assert failed.status == "failed"
    assert "rejected 3 times" in (failed.error or "")
    assert len(script.prompts) == 3  # no fourth run
    assert [r.status for r in await runs_of(app, task.id)] == ["done", "done", "done"]


async def test_approving_at_complete_makes_the_task_done(open_project: OpenProject) -> None:
    app = await open_project(approvalGates=[{"name": "review", "hook": "task:complete"}])
    task = await app.tasks.add("Write docs", agent="writer")
    runner = make_runner(app, Script(["docs written"]))
    await runner.drain()
    (a,) = await app.approvals.list()
    await app.approvals.approve(a.id, by="cli")
    done = await app.tasks.get(task.id)
    assert done.status == "done" and done.result == "docs written"


async def test_gate_timeouts_apply_on_timeout(open_project: OpenProject, clock: FakeClock) -> None:
    app = await open_project(
        approvalGates=[
            {
                "name": "plan",
                "hook": "task:start",
                "agents": ["writer"],
                "timeoutMinutes": 30,
                "onTimeout": "approve",
            },
            {
                "name": "review",
                "hook": "task:complete",
                "agents": ["coder"],
                "timeoutMinutes": 60,
                "onTimeout": "reject",
                "maxRevisions": 1,
            },
        ]
    )
    docs = await app.tasks.add("Docs", agent="writer")
    code = await app.tasks.add("Code", agent="coder")
    script = Script(["did it"])
    runner = make_runner(app, script)
    await runner.drain()
    assert (await app.tasks.get(docs.id)).status == "awaiting_approval"
    assert (await app.tasks.get(code.id)).status == "awaiting_approval"

    clock.advance(29 * 60)
    await runner.drain()
    assert (await app.tasks.get(docs.id)).status == "awaiting_approval"

    clock.advance(2 * 60)  # the start gate timed out: approved automatically, so it runs
    await runner.drain()
    assert (await app.tasks.get(docs.id)).status == "done"
    code_now = await app.tasks.get(code.id)
    assert code_now.status == "awaiting_approval"

    clock.advance(60 * 60)  # the review timed out: rejected, so the coder revises once
    await runner.drain()
    revised = await app.tasks.get(code.id)
    assert revised.revision_count == 1 and revised.status == "awaiting_approval"
    assert "no decision within the gate's timeout" in script.prompts[-1]
    expired = await app.approvals.list(status=["expired"])
    assert {a.gate for a in expired} == {"plan", "review"}

    clock.advance(61 * 60)  # timed out again after maxRevisions: it fails
    await runner.drain()
    assert (await app.tasks.get(code.id)).status == "failed"


async def test_a_mission_of_three_dependent_tasks_runs_in_order(open_project: OpenProject) -> None:
    app = await open_project()
    order: list[str] = []

    def step(messages: list[Any]) -> str:
        prompt = str(messages[0].parts[-1].content)
        order.append(prompt.split("\n")[0].split(": ", 1)[1])
        return f"finished {order[-1]}"

    mission = await app.missions.add(
        "Release",
        plan=[
            PlannedTask("Build", agent="writer"),
            PlannedTask("Test", agent="writer", depends_on=(0,)),
            PlannedTask("Ship", agent="writer", depends_on=(1,)),
        ],
    )
    runner = make_runner(app, Script([step]))
    report = await runner.drain()
    assert order == [] and report.blocked == 3  # a draft mission does not run

    await app.missions.start(mission.id)
    await runner.drain()

    assert order == ["Build", "Test", "Ship"]  # writer may run 3 at once: dependencies order them
    done = await app.missions.get(mission.id)
    assert done.status == "completed" and done.progress == "3/3"
    tasks_ = await app.missions.tasks_of(mission.id)
    assert "finished Build" in (await _prompt_of(runner, tasks_[1]))


async def _prompt_of(runner: Runner, task: Any) -> str:
    return await runner._prompt(task)


async def test_a_failed_task_fails_its_dependents_and_the_mission(
    open_project: OpenProject,
) -> None:
    app = await open_project()

    def step(messages: list[Any]) -> str:
        raise RuntimeError("provider exploded")

    mission = await app.missions.add(
        "Release",
        plan=[
            PlannedTask("Build", agent="coder"),
            PlannedTask("Ship", agent="coder", depends_on=(0,)),
        ],
        activate=True,
    )
    await make_runner(app, Script([step])).drain()
    build, ship = await app.missions.tasks_of(mission.id)
    assert build.status == "failed" and "provider exploded" in (build.error or "")
    assert ship.status == "failed" and ship.error == f"dependency {build.short_id} failed"
    assert (await app.missions.get(mission.id)).status == "failed"


async def test_max_concurrency_is_respected(open_project: OpenProject) -> None:
    app = await open_project()
    release = asyncio.Event()
    both = asyncio.Event()
    active = 0
    peak = 0

    async def slow(messages: list[Any]) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 2:
            both.set()
        await release.wait()
        active -= 1
        return "ok"

    for i in range(4):
        await app.tasks.add(f"Job {i}", agent="ops")  # ops: maxConcurrency 2
    runner = make_runner(app, Script([slow]))
    assert await runner.tick() == 2
    assert await runner.tick() == 0
    assert len(await app.tasks.list(status=["running"])) == 2
    await asyncio.wait_for(both.wait(), 10)  # the two runs got to the model
    release.set()
    await runner.wait_idle()
    await runner.drain()
    assert peak == 2
    assert len(await app.tasks.list(status=["done"])) == 4
    runner.close()


async def test_two_runners_on_one_database_never_run_a_task_twice(
    open_project: OpenProject,
) -> None:
    app1 = await open_project()
    app2 = await open_project()  # a second process's view of the same database
    ids = [(await app1.tasks.add(f"Job {i}", agent="writer")).id for i in range(6)]

    async def answer(messages: list[Any]) -> str:
        await asyncio.sleep(0)
        return "ok"

    r1, r2 = make_runner(app1, Script([answer])), make_runner(app2, Script([answer]))
    await asyncio.gather(r1.drain(), r2.drain())
    for task_id in ids:
        assert [r.status for r in await runs_of(app1, task_id)] == ["done"]
        assert (await app1.tasks.get(task_id)).status == "done"


async def test_a_task_without_agent_and_no_agents_configured_fails_clearly(
    open_project: OpenProject,
) -> None:
    app = await open_project(agents=[])
    task = await app.tasks.add("Orphan")
    await make_runner(app, Script(["x"])).drain()
    failed = await app.tasks.get(task.id)
    assert failed.status == "failed" and "none is configured" in (failed.error or "")


async def test_the_tool_round_limit_stops_a_looping_agent(open_project: OpenProject) -> None:
    app = await open_project(runner={"maxToolRounds": 2})
    task = await app.tasks.add("Loop", agent="coder")
    looping = Script([[("list_files", {"path": "."})]])  # never answers
    await make_runner(app, looping).drain()
    failed = await app.tasks.get(task.id)
    assert failed.status == "failed" and "maxToolRounds" in (failed.error or "")
    (run,) = await runs_of(app, task.id)
    # the model may ask for maxToolRounds + 1 requests; the one after is refused
    assert run.status == "failed" and len(run.transcript) == 3


async def test_cancelling_a_running_task_stops_its_run(open_project: OpenProject) -> None:
    app = await open_project()
    started = asyncio.Event()

    async def forever(messages: list[Any]) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = await app.tasks.add("Long", agent="coder")
    runner = make_runner(app, Script([forever]))
    runner.attach()
    await runner.tick()
    await asyncio.wait_for(started.wait(), 5)
    await app.tasks.cancel(task.id, reason="changed my mind")
    await asyncio.wait_for(runner.wait_idle(), 5)
    assert (await app.tasks.get(task.id)).status == "cancelled"
    (run,) = await runs_of(app, task.id)
    assert run.status == "cancelled"
    runner.close()


async def test_a_dead_runners_run_is_interrupted_and_retryable_never_done_twice(
    open_project: OpenProject, clock: FakeClock
) -> None:
    app1 = await open_project()
    app2 = await open_project()
    task = await app1.tasks.add("Long job", agent="coder")
    started = asyncio.Event()
    release = asyncio.Event()

    async def stuck(messages: list[Any]) -> str:
        started.set()
        await release.wait()
        return "late answer"

    first = make_runner(app1, Script([stuck]))
    await first.tick()
    await asyncio.wait_for(started.wait(), 5)

    second = make_runner(app2, Script(["fresh answer"]))
    assert await second.recover() == []  # the first runner is alive and its lease current
    clock.advance(120)  # the first runner stops heart-beating: its lease runs out
    (interrupted,) = await second.recover()
    assert interrupted.status == "failed" and "interrupted" in (interrupted.error or "")
    assert f"polpo task retry {task.short_id}" in (interrupted.error or "")

    release.set()  # the first runner's late answer is discarded
    await first.wait_idle()
    assert (await app1.tasks.get(task.id)).status == "failed"

    await app2.tasks.retry(task.id)
    await second.drain()
    final = await app1.tasks.get(task.id)
    assert final.status == "done" and final.result == "fresh answer" and final.attempts == 2
    assert [r.status for r in await runs_of(app1, task.id)] == ["discarded", "done"]
    assert await event_count(app1, "task:done", task.id) == 1
    first.close()
    second.close()


async def test_a_run_left_by_a_stopped_runner_of_this_process_is_recovered(
    open_project: OpenProject,
) -> None:
    app = await open_project()
    task = await app.tasks.add("Job", agent="coder")
    async with app.store.write() as conn:  # as a runner that died mid-run left it
        await conn.execute(
            sa.update(tasks)
            .where(tasks.c.id == task.id)
            .values(status="running", lease_owner="pid 1 on elsewhere runner 0a", lease_until=0.0)
        )
    assert not owner_is_dead("pid 1 on elsewhere runner 0a")  # another host: only the lease tells
    await make_runner(app, Script(["ok"])).drain()
    assert (await app.tasks.get(task.id)).status == "failed"


@pytest.mark.parametrize("owner", ["", None])
def test_a_lease_without_owner_is_dead(owner: str | None) -> None:
    assert owner_is_dead(owner)


async def test_one_drain_runs_a_long_queue_to_the_end(open_project: OpenProject) -> None:
    """Runs that end while the runner is looking for work must not end the drain early."""
    app = await open_project()
    for i in range(40):
        await app.tasks.add(f"Job {i}", agent="coder")  # coder: one at a time
    report = await make_runner(app, Script(["ok"])).drain()
    assert len(report.finished) == 40 and report.blocked == 0
    assert await app.tasks.counts_by_status() == {"done": 40}


async def test_serve_mode_runs_tasks_as_they_come_and_after_approvals(
    open_project: OpenProject,
) -> None:
    from polpo.runner.component import RunnerComponent

    app = await open_project(
        approvalGates=[{"name": "plan", "hook": "task:start", "agents": ["writer"]}],
        runner={"pollSeconds": 60},  # only events can wake it in time
    )
    done = asyncio.Event()

    async def on_done(ev: Any) -> None:
        done.set()

    app.bus.subscribe("task:done", on_done)
    component = RunnerComponent(app, model_factory=Script(["ok"]).factory())
    await component.start()
    try:
        task = await app.tasks.add("Now", agent="coder")
        await asyncio.wait_for(done.wait(), 10)
        assert (await app.tasks.get(task.id)).status == "done"

        done.clear()
        gated = await app.tasks.add("Later", agent="writer")
        (approval,) = await _wait_for_approval(app)
        assert (await app.tasks.get(gated.id)).status == "awaiting_approval"
        await app.approvals.approve(approval.id, by="telegram:1")
        await asyncio.wait_for(done.wait(), 10)
        assert (await app.tasks.get(gated.id)).status == "done"
    finally:
        await component.stop()


async def _wait_for_approval(app: Polpo) -> list[Any]:
    requested = asyncio.Event()

    async def on_req(ev: Any) -> None:
        requested.set()

    unsubscribe = app.bus.subscribe("approval:requested", on_req)
    try:
        if not await app.approvals.list():
            await asyncio.wait_for(requested.wait(), 10)
        return await app.approvals.list()
    finally:
        unsubscribe()


async def test_a_start_approval_is_asked_even_while_the_agent_is_busy(
    open_project: OpenProject,
) -> None:
    app = await open_project(
        approvalGates=[{"name": "plan", "hook": "task:start", "agents": ["coder"]}]
    )
    release = asyncio.Event()

    async def slow(messages: list[Any]) -> str:
        await release.wait()
        return "ok"

    first = await app.tasks.add("First", agent="coder")
    runner = make_runner(app, Script([slow]))
    await runner.tick()  # asks for First
    (a1,) = await app.approvals.list()
    await app.approvals.approve(a1.id, by="cli")
    await runner.tick()  # First runs: coder (maxConcurrency 1) is busy
    assert (await app.tasks.get(first.id)).status == "running"
    second = await app.tasks.add("Second", agent="coder")
    await runner.tick()
    (a2,) = await app.approvals.list()  # asked now, not when coder is free
    assert a2.task_id == second.id
    release.set()
    await runner.wait_idle()
    await app.approvals.approve(a2.id, by="cli")
    await runner.drain()
    assert (await app.tasks.get(second.id)).status == "done"
    runner.close()


async def test_run_wait_waits_for_an_approval_given_elsewhere(open_project: OpenProject) -> None:
    app = await open_project(
        approvalGates=[{"name": "plan", "hook": "task:start"}], runner={"pollSeconds": 0.05}
    )
    cli = await open_project()  # another process: its events reach us only through the db
    task = await app.tasks.add("Gated", agent="writer")
    requested = asyncio.Event()

    async def on_req(ev: Any) -> None:
        requested.set()

    app.bus.subscribe("approval:requested", on_req)
    drain = asyncio.create_task(make_runner(app, Script(["ok"])).drain(wait=True))
    await asyncio.wait_for(requested.wait(), 10)
    assert not drain.done()
    (approval,) = await cli.approvals.list()
    await cli.approvals.approve(approval.short_id, by="cli")
    report = await asyncio.wait_for(drain, 10)
    assert [t.id for t in report.finished] == [task.id]
    assert (await app.tasks.get(task.id)).status == "done"


async def test_a_run_past_task_timeout_minutes_fails_and_the_runner_goes_on(
    open_project: OpenProject,
) -> None:
    app = await open_project(
        runner={"taskTimeoutMinutes": 0.01}
    )  # 0.6 s: the quick task must fit in it even on a loaded machine

    async def hang(messages: list[Any]) -> str:
        if "Hangs" in str(messages[0].parts[-1].content):
            await asyncio.Event().wait()
        return "quick"

    hangs = await app.tasks.add("Hangs", agent="writer")
    quick = await app.tasks.add("Quick", agent="writer")
    await make_runner(app, Script([hang])).drain()
    failed = await app.tasks.get(hangs.id)
    assert failed.status == "failed"
    assert failed.error == "timed out after 0.01 minutes (settings.runner.taskTimeoutMinutes)"
    q = await app.tasks.get(quick.id)
    assert q.status == "done", q.error
