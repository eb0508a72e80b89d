"""A mission's plan is ordered unless it says otherwise (pure rules, no database)."""

from __future__ import annotations

import pytest

from polpo.core.plan import parse_after, step_dependencies


@pytest.mark.parametrize(
    ("count", "explicit", "parallel", "expected"),
    [
        (0, {}, False, []),
        (3, {}, False, [(), (0,), (1,)]),
        (3, {}, True, [(), (), ()]),
        (4, {2: (0,), 3: (1, 2)}, False, [(), (0,), (0,), (1, 2)]),
        (3, {1: ()}, False, [(), (), (1,)]),
        (3, {2: (0, 1)}, True, [(), (), (0, 1)]),
        (2, {1: (0, 0)}, False, [(), (0,)]),
    ],
)
def test_step_dependencies(
    count: int,
    explicit: dict[int, tuple[int, ...]],
    parallel: bool,
    expected: list[tuple[int, ...]],
) -> None:
    assert step_dependencies(count, explicit, parallel=parallel) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("3=1,2", (2, (0, 1))), (" 2 = 1 ", (1, (0,))), ("2=", (1, ())), ("4=1, 3", (3, (0, 2)))],
)
def test_parse_after(spec: str, expected: tuple[int, tuple[int, ...]]) -> None:
    assert parse_after(spec, 4) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("3", "is not STEP=STEPS"),
        ("x=1", "'x' is not a step number"),
        ("5=1", "there is no step 5 (the plan has 4)"),
        ("2=2", "only run after earlier steps (1-1)"),
        ("2=3", "only run after earlier steps"),
        ("1=2", "step 1 is the first"),
        ("3=one", "'one' is not a step number"),
    ],
)
def test_parse_after_mistakes(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_after(spec, 4)
