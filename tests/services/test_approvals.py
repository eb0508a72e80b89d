"""Approvals: the single decision path and its effects on the task."""

from __future__ import annotations

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.core.models import Event
from polpo.errors import AlreadyDecidedError, InvalidTransitionError, ValidationError


async def _record(app: Polpo) -> list[Event]:
    seen: list[Event] = []

    async def handler(e: Event) -> None:
        seen.append(e)

    app.bus.subscribe("*", handler)
    return seen


async def test_start_gate_approved_lets_the_task_run(app: Polpo) -> None:
    task = await app.tasks.add("Plan the docs", agent="writer")
    approval = await app.approvals.request(task.id, gate="plan", hook="task:start", summary="ok?")
    waiting = await app.tasks.get(task.id)
    assert (waiting.status, waiting.awaiting) == ("awaiting_approval", "task:start")

    decided = await app.approvals.approve(approval.short_id, by="whatsapp:39123456789")
    after = await app.tasks.get(task.id)
    assert decided.status == "approved"
    assert decided.resolved_by == "whatsapp:39123456789"
    assert (after.status, after.awaiting, after.start_approved) == ("pending", None, True)


async def test_start_gate_rejected_cancels_with_the_feedback(app: Polpo) -> None:
    task = await app.tasks.add("Plan the docs", agent="writer")
    approval = await app.approvals.request(task.id, gate="plan", hook="task:start")
    await app.approvals.reject(approval.id, by="cli", feedback="not now")
    after = await app.tasks.get(task.id)
    assert after.status == "cancelled"
    assert "not now" in (after.error or "")
    assert [f["feedback"] for f in after.feedback] == ["not now"]


async def test_complete_gate_approved_marks_done(app: Polpo) -> None:
    task = await app.tasks.add("Write code")
    approval = await app.approvals.request(task.id, gate="review", hook="task:complete")
    await app.approvals.approve(approval.id, by="cli")
    after = await app.tasks.get(task.id)
    assert after.status == "done"
    assert after.finished_at is not None


async def test_complete_gate_rejections_revise_then_fail(app: Polpo, clock: FakeClock) -> None:
    # the "review" gate allows 2 revisions
    task = await app.tasks.add("Write code")
    for n, reason in enumerate(["add tests", "fix the typo"], start=1):
        a = await app.approvals.request(task.id, gate="review", hook="task:complete")
        clock.advance(10)
        await app.approvals.reject(a.id, by="cli", feedback=reason)
        after = await app.tasks.get(task.id)
        assert after.status == "pending"
        assert after.revision_count == n
    assert [f["feedback"] for f in after.feedback] == ["add tests", "fix the typo"]
    assert after.feedback[0]["at"] < after.feedback[1]["at"]
    assert all(f["gate"] == "review" and f["by"] == "cli" for f in after.feedback)

    last = await app.approvals.request(task.id, gate="review", hook="task:complete")
    await app.approvals.reject(last.id, by="cli", feedback="still wrong")
    failed = await app.tasks.get(task.id)
    assert failed.status == "failed"
    assert failed.revision_count == 2
    assert "rejected 3 times" in (failed.error or "")
    assert len(failed.feedback) == 3


async def test_decided_approval_says_who_and_when(app: Polpo, clock: FakeClock) -> None:
    task = await app.tasks.add("Write code")
    a = await app.approvals.request(task.id, gate="review", hook="task:complete")
    await app.approvals.approve(a.id, by="telegram:42")
    decided_at = clock.now()
    clock.advance(60)
    for act in (
        app.approvals.approve(a.short_id, by="cli"),
        app.approvals.reject(a.short_id, by="cli", feedback="late"),
    ):
        with pytest.raises(AlreadyDecidedError) as info:
            await act
        err = info.value
        assert (err.status, err.resolved_by, err.resolved_at) == (
            "approved",
            "telegram:42",
            decided_at,
        )
        assert "already approved by telegram:42" in err.message
        assert isinstance(err, InvalidTransitionError)


async def test_reject_needs_a_reason(app: Polpo) -> None:
    task = await app.tasks.add("Write code")
    a = await app.approvals.request(task.id, gate="review", hook="task:complete")
    with pytest.raises(ValidationError, match="needs a reason"):
        await app.approvals.reject(a.id, by="cli", feedback="   ")
    with pytest.raises(ValidationError, match="at most"):
        await app.approvals.reject(a.id, by="cli", feedback="x" * 5000)
    assert (await app.approvals.get(a.id)).status == "pending"


async def test_expire_due_applies_on_timeout(app: Polpo, clock: FakeClock) -> None:
    approve_task = await app.tasks.add("Plan", agent="writer")
    reject_task = await app.tasks.add("Code", agent="coder")
    # plan: 30 min, onTimeout approve; review: 60 min, onTimeout reject
    plan = await app.approvals.request(
        approve_task.id, gate="plan", hook="task:start", timeout_minutes=30
    )
    review = await app.approvals.request(
        reject_task.id, gate="review", hook="task:complete", timeout_minutes=60
    )
    clock.advance(29 * 60)
    assert await app.approvals.expire_due() == []

    clock.advance(2 * 60)
    expired = await app.approvals.expire_due()
    assert [a.id for a in expired] == [plan.id]
    assert expired[0].status == "expired" and expired[0].resolved_by == "timeout"
    assert (await app.tasks.get(approve_task.id)).status == "pending"
    assert (await app.tasks.get(approve_task.id)).start_approved
    assert (await app.approvals.get(review.id)).status == "pending"

    clock.advance(30 * 60)
    expired = await app.approvals.expire_due()
    assert [a.id for a in expired] == [review.id]
    revised = await app.tasks.get(reject_task.id)
    assert revised.status == "pending" and revised.revision_count == 1
    assert "rejected automatically" in revised.feedback[0]["feedback"]
    assert await app.approvals.expire_due() == []


async def test_decisions_emit_events(app: Polpo) -> None:
    seen = await _record(app)
    task = await app.tasks.add("Write code")
    a = await app.approvals.request(task.id, gate="review", hook="task:complete", summary="diff")
    await app.approvals.approve(a.id, by="cli")
    types = [e.type for e in seen]
    assert types == ["task:created", "approval:requested", "task:done", "approval:resolved"]
    resolved = seen[-1].payload
    assert resolved["shortId"] == a.short_id
    assert resolved["by"] == "cli" and resolved["status"] == "approved"


async def test_list_filters_by_status_and_task(app: Polpo) -> None:
    t1 = await app.tasks.add("One")
    t2 = await app.tasks.add("Two")
    a1 = await app.approvals.request(t1.id, gate="review", hook="task:complete")
    await app.approvals.request(t2.id, gate="review", hook="task:complete")
    await app.approvals.approve(a1.id, by="cli")
    assert len(await app.approvals.list()) == 1
    assert [a.id for a in await app.approvals.list(status=["approved"])] == [a1.id]
    assert len(await app.approvals.list(status=None)) == 2
    assert [a.task_id for a in await app.approvals.list(status=None, task=t2.short_id)] == [t2.id]
    with pytest.raises(ValidationError, match="unknown approval status"):
        await app.approvals.list(status=["maybe"])


async def test_cancelling_a_task_closes_its_pending_approval(app: Polpo) -> None:
    task = await app.tasks.add("Write code")
    a = await app.approvals.request(task.id, gate="review", hook="task:complete")
    await app.tasks.cancel(task.id, by="cli", reason="changed my mind")
    closed = await app.approvals.get(a.id)
    assert closed.status == "expired" and closed.feedback == "task cancelled"
    with pytest.raises(AlreadyDecidedError):
        await app.approvals.approve(a.id, by="cli")
