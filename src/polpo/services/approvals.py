"""Approvals: the one code path through which a human (or a timeout) decides a gate.

The CLI, the HTTP API, chat commands and WhatsApp reactions all call
:meth:`ApprovalService.approve` / :meth:`ApprovalService.reject`.

Effects on the task:

* ``task:start`` approved → the task may run (back to ``pending``, gate passed);
  rejected → the task is cancelled with the feedback recorded.
* ``task:complete`` approved → the task is ``done``; rejected → the task runs
  again with the feedback appended, until ``maxRevisions`` rejections, after
  which it fails.
* A timeout applies the gate's ``onTimeout`` and marks the approval ``expired``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from polpo import ids
from polpo.core import states
from polpo.core.models import Approval, Task
from polpo.errors import AlreadyDecidedError, ValidationError
from polpo.services.context import ServiceContext, Tx
from polpo.services.tasks import TaskService
from polpo.store import records
from polpo.store.tables import approvals

DEFAULT_MAX_REVISIONS = 3
MAX_FEEDBACK = 4000


def approval_event(a: Approval, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "approvalId": a.id,
        "shortId": a.short_id,
        "gate": a.gate,
        "hook": a.hook,
        "taskId": a.task_id,
        "taskShortId": a.task_short_id,
        "taskTitle": a.task_title,
        "agent": a.agent,
        "status": a.status,
        "summary": a.summary,
    }
    payload.update(extra)
    return payload


class ApprovalService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.tasks = TaskService(ctx)

    async def get(self, ref: str) -> Approval:
        async with self.ctx.read() as conn:
            return await records.find_approval(conn, ref)

    async def list(
        self,
        *,
        status: Sequence[str] | None = ("pending",),
        task: str | None = None,
        limit: int | None = None,
    ) -> list[Approval]:
        for s in status or ():
            if s not in states.APPROVAL_STATUSES:
                raise ValidationError(
                    f"unknown approval status {s!r}; use one of {', '.join(states.APPROVAL_STATUSES)}"
                )
        async with self.ctx.read() as conn:
            task_id = (await records.find_task(conn, task)).id if task else None
            return await records.list_approvals(conn, status=status, task_id=task_id, limit=limit)

    async def request(
        self,
        task_ref: str,
        *,
        gate: str,
        hook: str,
        summary: str = "",
        timeout_minutes: float | None = None,
    ) -> Approval:
        """Open a gate on a task: the task waits in ``awaiting_approval``."""
        async with self.ctx.tx() as tx:
            task = await records.find_task(tx.conn, task_ref)
            return await self.request_in(
                tx, task, gate=gate, hook=hook, summary=summary, timeout_minutes=timeout_minutes
            )

    async def request_in(
        self,
        tx: Tx,
        task: Task,
        *,
        gate: str,
        hook: str,
        summary: str = "",
        timeout_minutes: float | None = None,
    ) -> Approval:
        if hook not in ("task:start", "task:complete"):
            raise ValidationError(f"unknown gate hook {hook!r}")
        await self.tasks.transition(tx, task, "awaiting_approval", awaiting=hook)
        approval_id = ids.new_id()
        short = await records.new_short_id(tx.conn, approvals, approval_id)
        await tx.conn.execute(
            approvals.insert().values(
                id=approval_id,
                short_id=short,
                gate=gate,
                hook=hook,
                task_id=task.id,
                agent=task.agent,
                status="pending",
                summary=summary[:4000],
                requested_at=tx.now,
                expires_at=(tx.now + timeout_minutes * 60) if timeout_minutes else None,
            )
        )
        a = await records.get_approval(tx.conn, approval_id)
        await tx.emit("approval:requested", approval_event(a))
        return a

    async def approve(self, ref: str, *, by: str) -> Approval:
        async with self.ctx.tx() as tx:
            a = await records.find_approval(tx.conn, ref)
            return await self._decide(tx, a, "approved", by=by, feedback=None)

    async def reject(self, ref: str, *, by: str, feedback: str) -> Approval:
        feedback = feedback.strip()
        if not feedback:
            raise ValidationError("a rejection needs a reason: it is the feedback the agent gets")
        if len(feedback) > MAX_FEEDBACK:
            raise ValidationError(f"feedback may have at most {MAX_FEEDBACK} characters")
        async with self.ctx.tx() as tx:
            a = await records.find_approval(tx.conn, ref)
            return await self._decide(tx, a, "rejected", by=by, feedback=feedback)

    async def expire_due(self) -> builtins.list[Approval]:
        """Apply ``onTimeout`` to every pending approval past its deadline."""
        now = self.ctx.clock.now()
        async with self.ctx.read() as conn:
            due = [
                r[0]
                for r in (
                    await conn.execute(
                        sa.select(approvals.c.id).where(
                            approvals.c.status == "pending",
                            approvals.c.expires_at.is_not(None),
                            approvals.c.expires_at <= now,
                        )
                    )
                ).all()
            ]
        done: builtins.list[Approval] = []
        for approval_id in due:
            try:
                async with self.ctx.tx() as tx:
                    a = await records.get_approval(tx.conn, approval_id)
                    if a.status != "pending":
                        continue
                    gate = self._gate(a.gate)
                    on_timeout = gate.on_timeout if gate else "reject"
                    done.append(
                        await self._decide(
                            tx,
                            a,
                            "expired",
                            by="timeout",
                            feedback=f"no decision within the gate's timeout; {on_timeout}ed automatically",
                            effect="approved" if on_timeout == "approve" else "rejected",
                        )
                    )
            except AlreadyDecidedError:
                continue  # decided meanwhile (a human, or another runner's timeout)
        return done

    # -- the single decision path ----------------------------------------------

    async def _decide(
        self,
        tx: Tx,
        a: Approval,
        status: str,
        *,
        by: str,
        feedback: str | None,
        effect: str | None = None,
    ) -> Approval:
        # Two deciders at once (two processes on PostgreSQL): lock the task, then the
        # approval (the order cancelling a task takes them in), and decide from the row
        # as the other left it; the update below is a compare-and-set all the same.
        await records.get_task(tx.conn, a.task_id, lock=True)
        a = await records.get_approval(tx.conn, a.id, lock=True)
        _check_pending(a)
        states.check("approval", a.status, status, a.short_id)
        res = await tx.conn.execute(
            approvals.update()
            .where(approvals.c.id == a.id, approvals.c.status == "pending")
            .values(status=status, resolved_at=tx.now, resolved_by=by, feedback=feedback)
        )
        if res.rowcount != 1:
            _check_pending(await records.get_approval(tx.conn, a.id))
        decided = await records.get_approval(tx.conn, a.id)
        await self._apply(tx, decided, effect or status, by=by, feedback=feedback)
        decided = await records.get_approval(tx.conn, a.id)
        await tx.emit("approval:resolved", approval_event(decided, by=by, feedback=feedback))
        return decided

    async def _apply(
        self, tx: Tx, a: Approval, effect: str, *, by: str, feedback: str | None
    ) -> None:
        task = await records.get_task(tx.conn, a.task_id)
        if task.status != "awaiting_approval":
            return  # the task moved on (e.g. cancelled); the decision is recorded only
        if a.hook == "task:start":
            if effect == "approved":
                await self.tasks.transition(tx, task, "pending", by=by, start_approved=True)
            else:
                await self.tasks.transition(
                    tx,
                    task,
                    "cancelled",
                    by=by,
                    error=f"rejected at start: {feedback}",
                    feedback=[
                        *task.feedback,
                        {"feedback": feedback, "by": by, "at": tx.now, "gate": a.gate},
                    ],
                )
            return
        # task:complete
        if effect == "approved":
            await self.tasks.transition(tx, task, "done", by=by)
            return
        history = [*task.feedback, {"feedback": feedback, "by": by, "at": tx.now, "gate": a.gate}]
        gate = self._gate(a.gate)
        max_revisions = gate.max_revisions if gate else DEFAULT_MAX_REVISIONS
        if task.revision_count < max_revisions:
            await self.tasks.transition(
                tx,
                task,
                "pending",
                by=by,
                feedback=history,
                revision_count=task.revision_count + 1,
            )
        else:
            await self.tasks.transition(
                tx,
                task,
                "failed",
                by=by,
                feedback=history,
                error=f"rejected {task.revision_count + 1} times (maxRevisions {max_revisions}): {feedback}",
            )

    def _gate(self, name: str) -> Any:
        return next((g for g in self.ctx.config.settings.approval_gates if g.name == name), None)


def _check_pending(a: Approval) -> None:
    """The one "already decided" error, whichever way the decision was lost."""
    if a.status != "pending":
        raise AlreadyDecidedError(
            f"approval {a.short_id} was already {a.status}"
            + (f" by {a.resolved_by}" if a.resolved_by else ""),
            a.status,
            a.resolved_by,
            a.resolved_at,
        )
