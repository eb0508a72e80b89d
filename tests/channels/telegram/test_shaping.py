"""Pure pieces: the plain-text fallback, splitting, message refs, backoff."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from polpo.channels.backoff import Backoff
from polpo.channels.base import Button
from polpo.channels.telegram.inbound import message_ref, parse_message_ref
from polpo.channels.telegram.outbound import html_to_plain, inline_keyboard, split_plain, utf16_len


def test_plain_text_keeps_the_words_and_link_addresses() -> None:
    html = (
        "<b>Task</b> <code>a1b2</code> &lt;done&gt; &amp; "
        '<a href="https://x.io/?a=1&amp;b=2">details</a> '
        '<a href="https://x.io">https://x.io</a>\n<pre><code class="language-py">x = 1</code></pre>'
    )
    assert html_to_plain(html) == (
        "Task a1b2 <done> & details (https://x.io/?a=1&b=2) https://x.io\nx = 1"
    )


def test_plain_text_keeps_what_only_looked_like_a_tag() -> None:
    assert html_to_plain("if a <b and c> d") == "if a <b and c> d"
    assert html_to_plain("x < y > z <unknown>") == "x < y > z <unknown>"


def test_split_prefers_line_breaks_and_counts_utf16() -> None:
    text = "a" * 3000 + "\n" + "b" * 3000
    assert split_plain(text, 4096) == ["a" * 3000, "b" * 3000]
    emoji = "😀" * 3000  # 2 UTF-16 units each
    parts = split_plain(emoji, 4096)
    assert [utf16_len(p) for p in parts] == [4096, 6000 - 4096]
    assert "".join(parts) == emoji


@given(st.text(min_size=1, max_size=3000), st.integers(min_value=2, max_value=500))
def test_split_never_exceeds_the_limit_and_loses_no_words(text: str, limit: int) -> None:
    parts = split_plain(text, limit)
    assert parts
    if text.strip():
        assert all(utf16_len(p) <= limit for p in parts)
        assert "".join("".join(p.split()) for p in parts) == "".join(text.split())


@given(st.text(max_size=500))
def test_plain_text_fallback_never_fails(text: str) -> None:
    assert isinstance(html_to_plain(text), str)


def test_buttons_are_rows_of_three() -> None:
    markup = inline_keyboard([Button(str(i), f"/c{i}") for i in range(5)])
    assert markup is not None
    assert [len(row) for row in markup.inline_keyboard] == [3, 2]
    assert inline_keyboard([]) is None


def test_message_refs_round_trip() -> None:
    assert parse_message_ref(message_ref(-100123, 45)) == ("-100123", 45)
    assert parse_message_ref("42:7") == ("42", 7)
    assert parse_message_ref("callback:q-1") is None
    assert parse_message_ref("42:7:edit:1000") is None
    assert parse_message_ref("") is None


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    b = Backoff(rng=lambda: 1.0)
    assert [b.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert b.next_delay() == 1
    low = Backoff(rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1, 2]
    many = Backoff()
    assert all(0 < many.next_delay() <= 60 for _ in range(200))
