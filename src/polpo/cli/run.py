"""``polpo run``: drain the task queue once, in the foreground."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from polpo.cli.common import console, esc, print_json, with_app

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.core.models import Approval
    from polpo.runner import DrainReport


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    ctx: typer.Context,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Also wait for open approvals (and other runners' tasks) instead of exiting.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run every ready task now, then exit when nothing is runnable.

    Safe beside a running `polpo serve`: each task is claimed by one runner
    only. Tasks waiting for an approval are listed, not waited for (unless --wait).
    A task whose model cannot be used (no API key) stays pending, said once.
    Exits 1 if a task run here failed or could not start for that reason.
    """
    out = console()

    async def go(app: Polpo) -> tuple[DrainReport, dict[str, Approval]]:
        import asyncio

        from polpo.core.models import Event
        from polpo.runner import Runner

        async def progress(ev: Event) -> None:
            if as_json:
                return
            p = ev.payload
            label = f"{p.get('shortId')} {esc(p.get('title'))}"
            if ev.type == "task:started":
                out.print(f"▶ {label} ({esc(p.get('agent'))})")
            elif ev.type == "task:done":
                out.print(f"✅ {label}")
            elif ev.type == "task:failed":
                out.print(f"❌ {label}: {esc(p.get('error'))}")
            elif ev.type == "approval:requested":
                out.print(
                    f"✋ {p.get('taskShortId')} waits for approval {p.get('shortId')} "
                    f"({esc(p.get('gate'))}, {p.get('hook')})"
                )

        unsubscribe = app.bus.subscribe("*", progress)
        runner = Runner(app)
        terminated: list[bool] = []
        stop = _cancel_on_sigterm(terminated)
        try:
            report = await runner.drain(wait=wait)
        except asyncio.CancelledError:
            # the runs in flight were recorded as interrupted (retryable)
            if terminated:
                raise typer.Exit(143) from None
            raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt (exit 130)
        finally:
            stop()
            unsubscribe()
            runner.close()
        pending = {a.task_id: a for a in await app.approvals.list(status=["pending"])}
        return report, pending

    report, approvals = with_app(ctx, go)
    failed = [t for t in report.finished if t.status == "failed"]
    if as_json:
        print_json(
            {
                "finished": [t.to_dict() for t in report.finished],
                "awaitingApproval": [
                    {
                        **t.to_dict(),
                        "approval": approvals[t.id].to_dict() if t.id in approvals else None,
                    }
                    for t in report.awaiting
                ],
                "runningElsewhere": [t.to_dict() for t in report.running_elsewhere],
                "interrupted": [t.to_dict() for t in report.interrupted],
                "pending": report.blocked,
                "modelProblems": report.model_problems,
            }
        )
    else:
        done = sum(1 for t in report.finished if t.status == "done")
        summary = f"Ran {len(report.finished)} task{'s' if len(report.finished) != 1 else ''}"
        summary += f": {done} done, {len(failed)} failed" if report.finished else ""
        out.print(summary + ".")
        for t in report.interrupted:
            out.print(
                f"⚠ {t.short_id} {esc(t.title)} was interrupted (its runner stopped mid-run); "
                f"retry it with: polpo task retry {t.short_id}"
            )
        for t in report.awaiting:
            a = approvals.get(t.id)
            how = (
                f" — approve: polpo approvals approve {a.short_id} (or /approve {a.short_id} in chat)"
                if a
                else ""
            )
            out.print(f"✋ {t.short_id} {esc(t.title)} awaits approval{how}")
        for t in report.running_elsewhere:
            out.print(f"🔄 {t.short_id} {esc(t.title)} is running in another process")
        if report.blocked:
            out.print(
                f"{report.blocked} pending task{'s' if report.blocked != 1 else ''} not runnable yet "
                "(dependencies, a draft mission, or a busy agent)."
            )
        for t in failed:
            out.print(f"Retry a failed task with: polpo task retry {t.short_id}")
        for agent, why in report.model_problems.items():
            out.print(f"⏸ {esc(agent)}'s tasks stay pending: {esc(why)}")
    if failed or report.model_problems:
        raise typer.Exit(1)


def _cancel_on_sigterm(terminated: list[bool]) -> Callable[[], None]:
    """SIGTERM cancels the current task (so runs in flight are recorded); returns an undo."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        return lambda: None

    def on_term() -> None:
        terminated.append(True)
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
        return lambda: None

    def undo() -> None:
        loop.remove_signal_handler(signal.SIGTERM)

    return undo
