"""``polpo approvals list|show|approve|reject``: the human side of approval gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from polpo.cli.common import (
    CLI_ACTOR,
    CliUsageError,
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
    from polpo.core.models import Approval, Task

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RefArg = Annotated[
    str, typer.Argument(metavar="ID", help="Approval id, short id or unique prefix (4+ chars).")
]
ByOpt = Annotated[
    str, typer.Option("--by", metavar="NAME", help="Who decides (recorded as resolvedBy).")
]

approvals_app = typer.Typer(help="Approve or reject work stopped at a gate.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")


@approvals_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="pending (default), approved, rejected, expired, or all.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="At most this many.")
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List approvals (pending ones unless --status says otherwise)."""
    statuses = split_csv(status) or ["pending"]
    wanted = None if "all" in statuses else statuses

    async def go(app: Polpo) -> list[Approval]:
        return await app.approvals.list(status=wanted, limit=limit)

    approvals = with_app(ctx, go)
    if as_json:
        print_json([a.to_dict() for a in approvals])
        return
    if not approvals:
        console().print("No pending approvals." if wanted == ["pending"] else "No approvals match.")
        return
    t = table("ID", "STATUS", "GATE", "TASK", "AGENT", "AGE")
    for a in approvals:
        t.add_row(
            a.short_id,
            a.status,
            f"{esc(a.gate)} ({a.hook})",
            f"{a.task_short_id} {esc(a.task_title)}",
            esc(a.agent or "-"),
            age(a.requested_at),
        )
    console().print(t)
    if wanted == ["pending"]:
        first = approvals[0].short_id
        console().print(
            f'Decide: polpo approvals approve {first}  |  polpo approvals reject {first} "reason"'
        )


@approvals_app.command("show")
def show(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """One approval: its gate, task, summary and decision."""

    async def go(app: Polpo) -> Approval:
        return await app.approvals.get(ref)

    a = with_app(ctx, go)
    if as_json:
        print_json(a.to_dict())
        return
    out = console()
    out.print(f"[bold]{a.short_id}[/bold]  {esc(a.gate)} ({a.hook}) — {a.status}")
    out.print(f"  task        {a.task_short_id} {esc(a.task_title)}")
    out.print(f"  agent       {esc(a.agent or '-')}")
    out.print(f"  requested   {when(a.requested_at)}")
    if a.expires_at:
        out.print(f"  expires     {when(a.expires_at)}")
    if a.resolved_at:
        out.print(f"  decided     {when(a.resolved_at)} by {esc(a.resolved_by or '?')}")
    if a.feedback:
        out.print(f"  feedback    {esc(a.feedback)}")
    if a.summary:
        out.print("[bold]Summary[/bold]")
        out.print(esc(a.summary))


@approvals_app.command("approve")
def approve(
    ctx: typer.Context, ref: RefArg, by: ByOpt = CLI_ACTOR, as_json: JsonOpt = False
) -> None:
    """Approve: the task proceeds (start gate) or is done (complete gate)."""

    async def go(app: Polpo) -> tuple[Approval, Task]:
        a = await app.approvals.approve(ref, by=by)
        return a, await app.tasks.get(a.task_id)

    a, task = with_app(ctx, go)
    if as_json:
        print_json(a.to_dict())
        return
    console().print(f"Approved {a.short_id} ({esc(a.gate)}): {a.task_short_id} {esc(a.task_title)}")
    console().print(f"Task {task.short_id} is now {task.status}.")


@approvals_app.command("reject")
def reject(
    ctx: typer.Context,
    ref: RefArg,
    reason: Annotated[
        str | None, typer.Argument(help="Why: the feedback the agent gets.", show_default=False)
    ] = None,
    by: ByOpt = CLI_ACTOR,
    as_json: JsonOpt = False,
) -> None:
    """Reject with a reason: the task is revised (complete gate) or cancelled (start gate)."""
    if reason is None or not reason.strip():
        raise CliUsageError(
            f'a rejection needs a reason, the feedback the agent gets: polpo approvals reject {ref} "reason"'
        )

    async def go(app: Polpo) -> tuple[Approval, Task]:
        a = await app.approvals.reject(ref, by=by, feedback=reason)
        return a, await app.tasks.get(a.task_id)

    a, task = with_app(ctx, go)
    if as_json:
        print_json(a.to_dict())
        return
    console().print(f"Rejected {a.short_id} ({esc(a.gate)}): {a.task_short_id} {esc(a.task_title)}")
    revision = f" (revision {task.revision_count})" if task.status == "pending" else ""
    console().print(f"Task {task.short_id} is now {task.status}{revision}.")
