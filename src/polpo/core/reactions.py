"""Which reactions decide an approval: a thumbs up approves, a thumbs down rejects.

People react with whatever their keyboard gives them: 👍 in any of the five
skin tones (👍🏽), with or without the emoji/text presentation selectors
(U+FE0F, U+FE0E), a bare ✅ or ❌. All of them count; anything else is no
vote. A pure rule, so the gateway and the tests share it.
"""

from __future__ import annotations

from typing import Literal

Vote = Literal["approve", "reject"]

#: skin tone modifiers (Fitzpatrick 1-2 … 6) and presentation selectors: not part of the meaning
_IGNORED = frozenset({0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)})

_VOTES: dict[str, Vote] = {
    "\U0001f44d": "approve",  # 👍 thumbs up
    "\u2705": "approve",  # ✅ check mark button
    "\u2714": "approve",  # ✔ heavy check mark
    "\u2611": "approve",  # ☑ ballot box with check
    "\U0001f44e": "reject",  # 👎 thumbs down
    "\u274c": "reject",  # ❌ cross mark
    "\u274e": "reject",  # ❎ cross mark button
    "\u2716": "reject",  # ✖ heavy multiplication x
}


def approval_vote(emoji: str | None) -> Vote | None:
    """``"approve"``, ``"reject"``, or None when the reaction is no vote."""
    if not emoji:
        return None
    base = "".join(c for c in emoji.strip() if ord(c) not in _IGNORED)
    return _VOTES.get(base)
