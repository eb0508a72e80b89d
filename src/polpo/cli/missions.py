"""``polpo mission add|list|show|start|run|cancel``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from polpo.cli.common import (
    CLI_ACTOR,
    age,
    console,
    esc,
    print_json,
    split_csv,
    table,
    when,
    with_app,
)

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.core.models import Mission, Task

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RefArg = Annotated[
    str, typer.Argument(metavar="ID", help="Mission id, short id or unique prefix (4+ chars).")
]

mission_app = typer.Typer(
    help="Missions: a goal and an ordered plan of tasks.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(mission_app, name="mission")


@mission_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A short name.")],
    goal: Annotated[str, typer.Option("--goal", "-g", help="What done looks like.")] = "",
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            "-t",
            help="A step of the plan (repeatable); each runs after the one before it.",
        ),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="STEP=STEPS",
            help="Step STEP runs after these steps instead of the one before it: "
            "--after 3=1 (step 3 only needs step 1), --after 4=2,3, --after 2= (no wait). "
            "Steps are numbered from 1 in --task order (repeatable).",
        ),
    ] = None,
    parallel: Annotated[
        bool,
        typer.Option("--parallel", help="Steps wait for no other step (except as --after says)."),
    ] = False,
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="Agent for the plan's tasks.")
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="Activate it right away.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a mission (a draft unless --start) whose plan is its --task steps, in order:
    each step runs after the one before it, unless --after or --parallel say otherwise."""
    from polpo.cli.common import CliUsageError
    from polpo.core.plan import parse_after, step_dependencies
    from polpo.services.missions import PlannedTask

    titles = task or []
    explicit: dict[int, tuple[int, ...]] = {}
    for spec in after or []:
        try:
            step, deps = parse_after(spec, len(titles))
        except ValueError as e:
            raise CliUsageError(f"--after {e}") from None
        explicit[step] = deps
    waits = step_dependencies(len(titles), explicit, parallel=parallel)
    plan = [
        PlannedTask(title=t, agent=agent, depends_on=deps)
        for t, deps in zip(titles, waits, strict=True)
    ]

    async def go(app: Polpo) -> tuple[Mission, list[Task]]:
        m = await app.missions.add(name, goal=goal, plan=plan, created_by=CLI_ACTOR, activate=start)
        return m, await app.missions.tasks_of(m.id)

    mission, tasks = with_app(ctx, go)
    if as_json:
        print_json({**mission.to_dict(), "tasks": [t.to_dict() for t in tasks]})
        return
    out = console()
    out.print(
        f"Created mission {mission.short_id} ({mission.status}): {esc(mission.name)}"
        + (f" with {len(tasks)} task{'s' if len(tasks) != 1 else ''}" if tasks else "")
    )
    for i, (t, deps) in enumerate(zip(tasks, waits, strict=False), 1):
        when_ = f"  (after {', '.join(str(d + 1) for d in deps)})" if deps else ""
        out.print(f"  {i}. {t.short_id} {esc(t.title)}{when_}")
    if mission.status == "draft":
        hint = f"polpo mission start {mission.short_id}"
        if not tasks:
            hint = f'polpo task add "title" --mission {mission.short_id}, then ' + hint
        out.print(f"Next: {hint}")


@mission_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only these statuses: draft, active, completed, failed, cancelled.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="At most this many.")
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List missions, newest first, with progress."""

    async def go(app: Polpo) -> list[Mission]:
        return await app.missions.list(status=split_csv(status), limit=limit)

    missions = with_app(ctx, go)
    if as_json:
        print_json([m.to_dict() for m in missions])
        return
    if not missions:
        console().print('No missions. Add one: polpo mission add "name" --task "first step"')
        return
    t = table("ID", "STATUS", "NAME", "PROGRESS", "AGE")
    for m in missions:
        t.add_row(m.short_id, f"{m.icon} {m.status}", esc(m.name), m.progress, age(m.created_at))
    console().print(t)


@mission_app.command("show")
def show(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """A mission and its tasks in plan order."""

    async def go(app: Polpo) -> tuple[Mission, list[Task]]:
        m = await app.missions.get(ref)
        return m, await app.missions.tasks_of(m.id)

    mission, tasks = with_app(ctx, go)
    if as_json:
        print_json({**mission.to_dict(), "tasks": [t.to_dict() for t in tasks]})
        return
    _print_mission(mission, tasks)


@mission_app.command("start")
def start(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Activate a draft mission (or retry a failed one's failed tasks)."""

    async def go(app: Polpo) -> Mission:
        return await app.missions.start(ref)

    mission = with_app(ctx, go)
    if as_json:
        print_json(mission.to_dict())
        return
    console().print(f"Mission {mission.short_id} is {mission.status}: {esc(mission.name)}")


@mission_app.command("run")
def run(
    ctx: typer.Context,
    ref: RefArg,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Run its tasks here (like `polpo run`) until it completes, fails or waits for approval.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Activate a mission (like `start`; fine if already active); with --wait, run its tasks here."""

    async def go(app: Polpo) -> Mission:
        from polpo.runner import Runner

        m = await app.missions.get(ref)
        if m.status != "active":  # already active: run (or wait for) its tasks
            m = await app.missions.start(ref)
        if wait:
            runner = Runner(app)
            try:
                await runner.drain()
            finally:
                runner.close()
            m = await app.missions.get(m.id)
        return m

    mission = with_app(ctx, go)
    if as_json:
        print_json(mission.to_dict())
        return
    out = console()
    out.print(
        f"Mission {mission.short_id} is {mission.status} ({mission.progress} done): {esc(mission.name)}"
    )
    if not wait and mission.status == "active":
        out.print("`polpo serve` runs its tasks (or run them now: polpo run)")
    elif wait and mission.status == "active":
        out.print(
            "Some of its tasks wait for an approval or another runner: see polpo approvals list, "
            f"then polpo mission run {mission.short_id} --wait again"
        )


@mission_app.command("cancel")
def cancel(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Cancel a mission and its unfinished tasks."""

    async def go(app: Polpo) -> Mission:
        return await app.missions.cancel(ref, by=CLI_ACTOR)

    mission = with_app(ctx, go)
    if as_json:
        print_json(mission.to_dict())
        return
    console().print(f"Cancelled mission {mission.short_id}: {esc(mission.name)}")


def _print_mission(mission: Mission, tasks: list[Task]) -> None:
    out = console()
    out.print(f"[bold]{mission.short_id}[/bold]  {esc(mission.name)}")
    out.print(f"  id          {mission.id}")
    out.print(f"  status      {mission.icon} {mission.status}")
    out.print(f"  progress    {mission.progress} done")
    out.print(f"  created     {when(mission.created_at)} by {esc(mission.created_by)}")
    if mission.finished_at:
        out.print(f"  finished    {when(mission.finished_at)}")
    if mission.goal:
        out.print("[bold]Goal[/bold]")
        out.print(esc(mission.goal))
    if not tasks:
        out.print("No tasks yet.")
        return
    step_of = {task.id: i for i, task in enumerate(tasks, 1)}
    t = table("#", "ID", "STATUS", "TITLE", "AGENT", "AFTER")
    for i, task in enumerate(tasks, 1):
        after = [str(step_of[d]) if d in step_of else d[:8] for d in task.depends_on]
        t.add_row(
            str(i),
            task.short_id,
            f"{task.icon} {task.status}",
            esc(task.title),
            esc(task.agent or "-"),
            ", ".join(after) or "-",
        )
    out.print(t)
