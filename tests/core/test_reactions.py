"""Which reactions count as a vote on an approval (core/reactions.py)."""

from __future__ import annotations

import pytest

from polpo.core.reactions import approval_vote

TONES = ["", "\U0001f3fb", "\U0001f3fc", "\U0001f3fd", "\U0001f3fe", "\U0001f3ff"]


@pytest.mark.parametrize("tone", TONES)
@pytest.mark.parametrize("selector", ["", "\ufe0f", "\ufe0e"])
def test_every_skin_tone_and_presentation_of_thumbs_up_and_down(tone: str, selector: str) -> None:
    assert approval_vote(f"\U0001f44d{tone}{selector}") == "approve"
    assert approval_vote(f"\U0001f44e{tone}{selector}") == "reject"


@pytest.mark.parametrize(
    ("emoji", "vote"),
    [
        ("✅", "approve"),
        ("✔️", "approve"),
        ("✔", "approve"),
        ("☑️", "approve"),
        ("❌", "reject"),
        ("❎", "reject"),
        ("✖️", "reject"),
        (" 👍 ", "approve"),
    ],
)
def test_check_marks_and_crosses(emoji: str, vote: str) -> None:
    assert approval_vote(emoji) == vote


@pytest.mark.parametrize(
    "emoji", ["", None, "❤️", "😂", "👍👍", "👌", "🙏", "👍🏽❤️", "\ufe0f", "ok"]
)
def test_anything_else_is_no_vote(emoji: str | None) -> None:
    assert approval_vote(emoji) is None
