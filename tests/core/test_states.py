"""Every transition of every state machine: legal ones pass, all others raise."""

from __future__ import annotations

import itertools

import pytest

from polpo.core import states
from polpo.errors import InvalidTransitionError

MACHINES = {
    "task": (states.TASK_STATUSES, states.TASK_TRANSITIONS),
    "mission": (states.MISSION_STATUSES, states.MISSION_TRANSITIONS),
    "approval": (states.APPROVAL_STATUSES, states.APPROVAL_TRANSITIONS),
}

#: The lifecycle SPEC §6 describes, written out independently of the tables.
EXPECTED_LEGAL = {
    "task": {
        ("pending", "awaiting_approval"),
        ("pending", "running"),
        ("pending", "cancelled"),
        ("pending", "failed"),
        ("awaiting_approval", "pending"),
        ("awaiting_approval", "running"),
        ("awaiting_approval", "done"),
        ("awaiting_approval", "failed"),
        ("awaiting_approval", "cancelled"),
        ("running", "awaiting_approval"),
        ("running", "done"),
        ("running", "failed"),
        ("running", "cancelled"),
        ("running", "pending"),
        ("failed", "pending"),
    },
    "mission": {
        ("draft", "active"),
        ("draft", "cancelled"),
        ("active", "completed"),
        ("active", "failed"),
        ("active", "cancelled"),
        ("failed", "active"),
        ("failed", "cancelled"),
    },
    "approval": {
        ("pending", "approved"),
        ("pending", "rejected"),
        ("pending", "expired"),
    },
}

ALL_PAIRS = [
    (kind, a, b)
    for kind, (statuses, _) in MACHINES.items()
    for a, b in itertools.product(statuses, statuses)
]


@pytest.mark.parametrize(("kind", "current", "new"), ALL_PAIRS)
def test_transition(kind: str, current: str, new: str) -> None:
    legal = (current, new) in EXPECTED_LEGAL[kind]
    assert states.can(kind, current, new) is legal  # type: ignore[arg-type]
    if legal:
        states.check(kind, current, new, "k7m2")  # type: ignore[arg-type]
        return
    with pytest.raises(InvalidTransitionError) as info:
        states.check(kind, current, new, "k7m2")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"{kind} k7m2 is {current}; it cannot become {new}")
    allowed = sorted(b for a, b in EXPECTED_LEGAL[kind] if a == current)
    if allowed:
        assert f"it can go to: {', '.join(allowed)}" in message
    else:
        assert f"{current} is final" in message


def test_tables_cover_every_status() -> None:
    for statuses, table in MACHINES.values():
        assert set(table) == set(statuses)
        for targets in table.values():
            assert targets <= set(statuses)


def test_unknown_current_status_is_an_error() -> None:
    with pytest.raises(InvalidTransitionError, match="unknown status 'paused'"):
        states.check("task", "paused", "running", "k7m2")


def test_invalid_transition_maps_to_conflict() -> None:
    assert InvalidTransitionError("x").http_status == 409
    assert InvalidTransitionError("x").exit_code == 1
