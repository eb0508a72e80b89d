"""State machines of tasks, missions and approvals.

Each is a table of allowed moves; :func:`check` raises a clear error for
anything else, so no caller can, say, approve a rejected approval or restart
a finished task by accident.
"""

from __future__ import annotations

from typing import Final, Literal

from polpo.errors import InvalidTransitionError

TaskStatus = Literal["pending", "awaiting_approval", "running", "done", "failed", "cancelled"]
MissionStatus = Literal["draft", "active", "completed", "failed", "cancelled"]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]

TASK_STATUSES: Final = ("pending", "awaiting_approval", "running", "done", "failed", "cancelled")
MISSION_STATUSES: Final = ("draft", "active", "completed", "failed", "cancelled")
APPROVAL_STATUSES: Final = ("pending", "approved", "rejected", "expired")

TASK_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    # waits for its dependencies, its mission, or a free agent slot
    "pending": frozenset({"awaiting_approval", "running", "cancelled", "failed"}),
    # a gate is open: start approved → pending/running; complete approved → done;
    # complete rejected → pending (revision) or failed; start rejected → cancelled
    "awaiting_approval": frozenset({"pending", "running", "done", "failed", "cancelled"}),
    # finished → done / awaiting_approval (task:complete gate) / failed;
    # interrupted by a crash → pending (retry)
    "running": frozenset({"awaiting_approval", "done", "failed", "cancelled", "pending"}),
    # a failed task can be retried
    "failed": frozenset({"pending"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}

MISSION_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"active", "cancelled"}),
    "active": frozenset({"completed", "failed", "cancelled"}),
    "failed": frozenset({"active", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}

APPROVAL_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "pending": frozenset({"approved", "rejected", "expired"}),
    "approved": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}

_TABLES: Final = {
    "task": TASK_TRANSITIONS,
    "mission": MISSION_TRANSITIONS,
    "approval": APPROVAL_TRANSITIONS,
}

TERMINAL_TASK: Final = frozenset({"done", "cancelled"})
FINISHED_TASK: Final = frozenset({"done", "failed", "cancelled"})


def can(kind: Literal["task", "mission", "approval"], current: str, new: str) -> bool:
    return new in _TABLES[kind].get(current, frozenset())


def check(
    kind: Literal["task", "mission", "approval"], current: str, new: str, label: str = ""
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``current → new`` is allowed."""
    if current not in _TABLES[kind]:
        raise InvalidTransitionError(
            f"{kind} {label}: unknown status {current!r}".replace("  ", " ")
        )
    if not can(kind, current, new):
        allowed = sorted(_TABLES[kind][current])
        what = f"{kind} {label}".strip()
        hint = (
            f" (from {current} it can go to: {', '.join(allowed)})"
            if allowed
            else f" ({current} is final)"
        )
        raise InvalidTransitionError(f"{what} is {current}; it cannot become {new}{hint}")
