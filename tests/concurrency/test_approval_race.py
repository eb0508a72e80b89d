"""Two processes approve and reject the same approvals at the same moment, 30 times.

Whatever the engine, each decision has exactly one winner; the loser gets the
"already decided" error naming the winner, and the task ends in the state the
winning decision implies, with one ``approval:resolved`` event.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.store.tables import events
from tests.concurrency.workers import decide, run_processes

ROUNDS = 30


async def test_approve_and_reject_at_once_has_one_winner_and_a_consistent_task(
    app: Polpo, project: Path
) -> None:
    approvals = []
    for i in range(ROUNDS):
        task = await app.tasks.add(f"Draft chapter {i}", agent="writer")
        approvals.append(await app.approvals.request(task.id, gate="plan", hook="task:start"))
    ids = [a.id for a in approvals]
    config = str(project / ".polpo" / "polpo.json")

    outcomes = run_processes(decide, [(config, "approve", ids), (config, "reject", ids)])

    assert not [o for o in outcomes if o[0] == "crashed"], outcomes
    by_approval: dict[str, dict[str, tuple[str, str]]] = {}
    for approval_id, action, result, message in outcomes:
        by_approval.setdefault(approval_id, {})[action] = (result, message)
    async with app.store.read() as conn:
        resolved = [
            e.payload["approvalId"]
            for e in (
                await conn.execute(sa.select(events).where(events.c.type == "approval:resolved"))
            ).all()
        ]
    for a in approvals:
        got = by_approval[a.id]
        winners = [action for action, (result, _) in got.items() if result == "won"]
        assert len(winners) == 1, (a.short_id, got)
        [winner] = winners
        loser = "reject" if winner == "approve" else "approve"
        assert got[loser][0] == "lost"
        verb = "approved" if winner == "approve" else "rejected"
        assert got[loser][1] == f"approval {a.short_id} was already {verb} by {winner}r"
        decided = await app.approvals.get(a.id)
        task = await app.tasks.get(a.task_id)
        assert decided.status == verb and decided.resolved_by == f"{winner}r"
        if winner == "approve":
            assert (task.status, task.start_approved) == ("pending", True)
        else:
            assert (task.status, task.start_approved) == ("cancelled", False)
            assert task.error == "rejected at start: not like this"
        assert resolved.count(a.id) == 1
