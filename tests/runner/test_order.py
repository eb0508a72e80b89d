"""Which ready task starts first is the same on SQLite and PostgreSQL."""

from __future__ import annotations

from polpo.services.missions import PlannedTask
from tests.runner.conftest import OpenProject, Script, make_runner


async def test_tasks_without_a_mission_start_before_mission_tasks_on_both_engines(
    open_project: OpenProject,
) -> None:
    app = await open_project(agents=[{"name": "coder", "role": "dev", "maxConcurrency": 1}])
    await app.missions.add("Plan", plan=[PlannedTask("In the mission")], activate=True)
    alone = await app.tasks.add("On its own", agent="coder")
    runner = make_runner(app, Script(["ok"]))
    assert await runner.tick() == 1  # one slot: the first candidate in plan order takes it
    [started] = runner.inflight
    assert started.id == alone.id  # NULL mission first, as SQLite has always ordered it
    await runner.wait_idle()
    runner.close()
