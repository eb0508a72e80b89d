"""A mission's plan is ordered: which earlier steps each step waits for.

"Missions are an ordered plan": a step waits for the one before it unless
the plan says otherwise — explicitly, per step, or for the whole plan
(``parallel``: no step waits unless told). The CLI (``polpo mission add``)
and the HTTP API both read plans through :func:`step_dependencies`, so they
agree; ``--after 3=1,2`` (CLI, 1-based as printed) and ``dependsOn: [0, 1]``
(API, 0-based indexes) are the explicit forms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def step_dependencies(
    count: int, explicit: Mapping[int, Sequence[int]] | None = None, *, parallel: bool = False
) -> list[tuple[int, ...]]:
    """For steps ``0 … count-1``: the 0-based steps each waits for.

    A step in ``explicit`` waits for exactly those (none for an empty list);
    any other step waits for the step before it, or for nothing when ``parallel``.
    """
    explicit = explicit or {}
    out: list[tuple[int, ...]] = []
    for i in range(count):
        if i in explicit:
            out.append(tuple(dict.fromkeys(explicit[i])))
        elif i > 0 and not parallel:
            out.append((i - 1,))
        else:
            out.append(())
    return out


def parse_after(spec: str, count: int) -> tuple[int, tuple[int, ...]]:
    """``"3=1,2"`` (step 3 runs after steps 1 and 2; 1-based, as ``mission show`` numbers
    them) → ``(2, (0, 1))``; ``"3="`` → step 3 waits for nothing. Raises ValueError
    with a sentence saying what is wrong."""
    step_text, sep, after_text = spec.partition("=")
    if not sep:
        raise ValueError(f"{spec!r} is not STEP=STEPS, e.g. 3=1,2 (step 3 runs after 1 and 2)")
    step = _step_number(step_text, spec)
    if not 1 <= step <= count:
        raise ValueError(f"{spec!r}: there is no step {step} (the plan has {count})")
    after = [_step_number(a, spec) for a in after_text.split(",") if a.strip()]
    for a in after:
        if step == 1:
            raise ValueError(f"{spec!r}: step 1 is the first; it cannot run after another")
        if not 1 <= a < step:
            raise ValueError(
                f"{spec!r}: step {step} can only run after earlier steps (1-{step - 1})"
            )
    return step - 1, tuple(a - 1 for a in after)


def _step_number(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{spec!r}: {text.strip()!r} is not a step number") from None
