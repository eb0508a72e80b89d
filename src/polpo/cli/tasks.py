"""``polpo task add|list|show|runs|cancel|retry``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

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
    from polpo.core.models import Task

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RefArg = Annotated[
    str, typer.Argument(metavar="ID", help="Task id, short id or unique prefix (4+ chars).")
]

task_app = typer.Typer(help="Create, inspect, cancel and retry tasks.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")


@task_app.command("add")
def add(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="What to do, in a line.")],
    description: Annotated[
        str, typer.Option("--description", "-d", metavar="TEXT", help="Details for the agent.")
    ] = "",
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="Agent (default: the first one).")
    ] = None,
    mission: Annotated[
        str | None, typer.Option("--mission", "-m", help="Add it to this mission's plan.")
    ] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option(
            "--depends-on", metavar="ID", help="A task that must be done first (repeatable)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a task."""

    async def go(app: Polpo) -> Task:
        return await app.tasks.add(
            title,
            description=description,
            agent=agent,
            mission=mission,
            depends_on=depends_on or (),
            created_by=CLI_ACTOR,
        )

    task = with_app(ctx, go)
    if as_json:
        print_json(task.to_dict())
        return
    who = f" for {task.agent}" if task.agent else ""
    console().print(f"Created task {task.short_id}{esc(who)}: {esc(task.title)}")


@task_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only these statuses (repeatable or comma-separated): pending, "
            "awaiting_approval, running, done, failed, cancelled.",
        ),
    ] = None,
    mission: Annotated[
        str | None, typer.Option("--mission", "-m", help="Only this mission's tasks, in order.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="At most this many.")
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List tasks, newest first (a mission's in plan order)."""

    async def go(app: Polpo) -> tuple[list[Task], int]:
        statuses = split_csv(status)
        tasks = await app.tasks.list(status=statuses, mission=mission, limit=limit)
        total = len(tasks)
        if len(tasks) == limit and not mission:
            total = await app.tasks.count(status=statuses)
        return tasks, total

    tasks, total = with_app(ctx, go)
    if as_json:
        print_json([t.to_dict() for t in tasks])
        return
    out = console()
    if not tasks:
        out.print("No tasks." + ("" if status or mission else ' Add one: polpo task add "title"'))
        return
    t = table("ID", "STATUS", "TITLE", "AGENT", "AGE")
    for task in tasks:
        t.add_row(
            task.short_id,
            f"{task.icon} {task.status}",
            esc(task.title),
            esc(task.agent or "-"),
            age(task.created_at),
        )
    out.print(t)
    if total > len(tasks):
        out.print(f"…and {total - len(tasks)} more (use --limit).")


@task_app.command("show")
def show(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Everything about a task, including its feedback history and approvals."""

    async def go(app: Polpo) -> tuple[Task, list[Any], str | None]:
        task = await app.tasks.get(ref)
        approvals = await app.approvals.list(status=None, task=task.id)
        mission = (await app.missions.get(task.mission_id)).name if task.mission_id else None
        return task, approvals, mission

    task, approvals, mission = with_app(ctx, go)
    if as_json:
        print_json({**task.to_dict(), "approvals": [a.to_dict() for a in approvals]})
        return
    out = console()
    out.print(f"[bold]{task.short_id}[/bold]  {esc(task.title)}")
    rows: list[tuple[str, str]] = [
        ("id", task.id),
        ("status", f"{task.icon} {task.status}"),
        ("awaiting", task.awaiting or ""),
        ("agent", task.agent or "-"),
        ("mission", f"{mission} ({task.mission_id[:8]})" if task.mission_id and mission else ""),
        ("depends on", ", ".join(d[:8] for d in task.depends_on)),
        ("created", f"{when(task.created_at)} by {task.created_by}"),
        ("updated", when(task.updated_at)),
        ("started", when(task.started_at) if task.started_at else ""),
        ("finished", when(task.finished_at) if task.finished_at else ""),
        ("attempts", str(task.attempts) if task.attempts else ""),
        ("revisions", str(task.revision_count) if task.revision_count else ""),
    ]
    for label, value in rows:
        if value:
            out.print(f"  {label:<11} {esc(value)}")
    for label, text in (
        ("Description", task.description),
        ("Result", task.result),
        ("Error", task.error),
    ):
        if text:
            out.print(f"[bold]{label}[/bold]")
            out.print(esc(text))
    if task.feedback:
        out.print("[bold]Feedback[/bold]")
        for i, fb in enumerate(task.feedback, 1):
            out.print(
                f"  {i}. {when(fb.get('at'))} {esc(fb.get('by') or '')}"
                f" ({esc(fb.get('gate') or '')}): {esc(fb.get('feedback') or '')}"
            )
    if approvals:
        out.print("[bold]Approvals[/bold]")
        for a in approvals:
            decided = f" by {a.resolved_by} {when(a.resolved_at)}" if a.resolved_at else ""
            out.print(f"  {a.short_id} {a.gate} ({a.hook}): {a.status}{esc(decided)}")


@task_app.command("runs")
def runs(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Each run of a task: outcome, timing and the agent's tool calls."""
    from polpo.runner.runs import TaskRun, runs_of

    async def go(app: Polpo) -> tuple[Task, list[TaskRun]]:
        return await runs_of(app, ref)

    task, found = with_app(ctx, go)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    out = console()
    out.print(f"[bold]{task.short_id}[/bold]  {esc(task.title)}  ({task.icon} {task.status})")
    if not found:
        out.print("Not run yet.")
        return
    for r in found:
        took = f", {r.seconds:.1f} s" if r.seconds is not None else ""
        out.print(f"Attempt {r.attempt}: {r.status}{took}, {when(r.started_at)} by {esc(r.worker)}")
        for step in r.transcript:
            if step.get("type") == "tool":
                mark = {"ok": "✓", "refused": "✗ refused", "error": "✗ error"}.get(
                    str(step.get("status")), "•"
                )
                args = ", ".join(
                    f"{k}={str(v)[:60]!r}" for k, v in (step.get("args") or {}).items()
                )
                first = str(step.get("output") or "").splitlines()[:1]
                out.print(
                    f"  {mark} {step.get('tool')}({esc(args)})"
                    + (f" → {esc(first[0][:100])}" if first else "")
                )
            elif step.get("type") == "usage":
                out.print(
                    f"  {step.get('requests')} model requests, "
                    f"{step.get('inputTokens')} tokens in, {step.get('outputTokens')} out"
                )
        if r.result:
            out.print(f"  Result: {esc(r.result)}")
        if r.error:
            out.print(f"  Error: {esc(r.error)}")


@task_app.command("cancel")
def cancel(
    ctx: typer.Context,
    ref: RefArg,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (kept as its error).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cancel a task (and close its pending approvals)."""

    async def go(app: Polpo) -> Task:
        return await app.tasks.cancel(ref, by=CLI_ACTOR, reason=reason)

    task = with_app(ctx, go)
    if as_json:
        print_json(task.to_dict())
        return
    console().print(f"Cancelled task {task.short_id}: {esc(task.title)}")


@task_app.command("retry")
def retry(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Put a failed task back in the queue."""

    async def go(app: Polpo) -> Task:
        return await app.tasks.retry(ref, by=CLI_ACTOR)

    task = with_app(ctx, go)
    if as_json:
        print_json(task.to_dict())
        return
    console().print(f"Task {task.short_id} is pending again: {esc(task.title)}")
