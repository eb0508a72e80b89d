"""Outbound formatting: Markdown → WhatsApp / Telegram HTML / plain, cut into parts."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polpo.gateway.format import TextFormat, render, render_parts

# -- WhatsApp -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~strike~~", "~strike~"),
        ("use `git status` now", "use `git status` now"),
        ("`**not bold**`", "`**not bold**`"),
        ("# Title", "*Title*"),
        ("## A **bold** title", "*A bold title*"),
        ("see [the docs](https://x.io/docs)", "see the docs (https://x.io/docs)"),
        ("<https://x.io>", "https://x.io"),
        ("- one\n- two\n  * nested", "• one\n• two\n  • nested"),
        ("1. first\n2) second", "1. first\n2) second"),
        ("> quoted **text**", "> quoted *text*"),
        ("***both***", "*_both_*"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        # WhatsApp has no escape: literal markers that could format become look-alikes
        (r"\*not italic\*", "\u2217not italic\u2217"),
        (r"\_x\_ \~y\~ \`z\`", "\u02cdx\u02cd \u223cy\u223c \u02cbz\u02cb"),
        ("a\n\n\n\nb", "a\n\nb"),
        ("---", "———"),
    ],
)
def test_whatsapp_markup(markdown: str, expected: str) -> None:
    assert render(markdown, "whatsapp") == expected


def test_whatsapp_code_blocks_keep_their_fences_and_contents() -> None:
    md = "Try:\n\n```python\nx = a * b * c  # **not bold**\n```\nDone."
    assert render(md, "whatsapp") == "Try:\n\n```\nx = a * b * c  # **not bold**\n```\nDone."


def test_an_unclosed_code_block_runs_to_the_end() -> None:
    assert render("```\ncode *x*", "whatsapp") == "```\ncode *x*\n```"


# -- Telegram -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**b** _i_ ~~s~~ `c`", "<b>b</b> <i>i</i> <s>s</s> <code>c</code>"),
        ("# Title", "<b>Title</b>"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("<b>not a tag</b>", "&lt;b&gt;not a tag&lt;/b&gt;"),
        ("[x](https://a.io/?q=1&r=2)", '<a href="https://a.io/?q=1&amp;r=2">x</a>'),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](ftp://host/file)", "x (ftp://host/file)"),
        ("`a < b`", "<code>a &lt; b</code>"),
        ("> one\n> two", "<blockquote>one\ntwo</blockquote>"),
        ("```\nif a < b:\n```", "<pre>if a &lt; b:</pre>"),
        ("```py\nx\n```", '<pre><code class="language-py">x</code></pre>'),
    ],
)
def test_telegram_html(markdown: str, expected: str) -> None:
    assert render(markdown, "telegram") == expected


# -- plain --------------------------------------------------------------------------


def test_plain_strips_markup() -> None:
    md = "# Hi\n**bold** _it_ ~~s~~ `code` [docs](https://x.io)\n```\nraw *x*\n```"
    assert render(md, "plain") == "Hi\nbold it s code docs (https://x.io)\nraw *x*"


# -- splitting ----------------------------------------------------------------------


def test_empty_input_gives_no_parts() -> None:
    for fmt in ("whatsapp", "telegram", "plain"):
        assert render_parts("", fmt, 4000) == []
        assert render_parts(" \n\n\t", fmt, 4000) == []


def test_short_text_is_one_part() -> None:
    assert render_parts("**hello**", "whatsapp", 4000) == ["*hello*"]


def test_parts_break_at_paragraphs_first() -> None:
    first = "First paragraph. It has two sentences."
    second = "Second paragraph, a bit longer than the first one is."
    parts = render_parts(f"{first}\n\n{second}", "plain", 70)
    assert parts == [first, second]


def test_a_long_paragraph_breaks_at_sentences() -> None:
    text = "This is sentence one. This is sentence two! Is this three? Four."
    parts = render_parts(text, "plain", 45)
    assert parts == ["This is sentence one. This is sentence two!", "Is this three? Four."]


def test_without_sentences_it_breaks_between_words() -> None:
    parts = render_parts("alpha beta gamma delta epsilon zeta eta theta", "plain", 20)
    assert parts == ["alpha beta gamma", "delta epsilon zeta", "eta theta"]
    assert all(len(p) <= 20 for p in parts)


def test_one_endless_word_is_cut_hard() -> None:
    parts = render_parts("x" * 50, "plain", 20)
    assert parts == ["x" * 20, "x" * 20, "x" * 10]


def test_an_emoji_sequence_is_not_cut_in_half() -> None:
    family = "👨\u200d👩\u200d👧"
    parts = render_parts("x" * 14 + family + "y" * 10, "plain", 20)
    assert "".join(parts) == "x" * 14 + family + "y" * 10
    assert all(family in p or "\u200d" not in p for p in parts)


def test_a_code_block_cut_in_two_is_closed_and_reopened_on_whatsapp() -> None:
    code = "\n".join(f"line {i}" for i in range(30))
    parts = render_parts(f"Here:\n\n```\n{code}\n```", "whatsapp", 120)
    assert len(parts) > 2
    assert parts[0] == "Here:"
    for part in parts[1:]:
        assert part.startswith("```\n") and part.endswith("\n```")
        assert len(part) <= 120
    lines = [ln for p in parts[1:] for ln in p.split("\n") if ln != "```"]
    assert lines == code.split("\n")


def test_a_pre_block_cut_in_two_is_closed_and_reopened_on_telegram() -> None:
    code = "\n".join(f"if a{i} < b:" for i in range(30))
    parts = render_parts(f"```python\n{code}\n```", "telegram", 150)
    assert len(parts) > 1
    for part in parts:
        assert part.startswith('<pre><code class="language-python">')
        assert part.endswith("</code></pre>")
        assert_valid_telegram_html(part)


def test_bold_across_a_cut_is_balanced_in_each_part() -> None:
    parts = render_parts("**" + " ".join(["word"] * 60) + "**", "telegram", 100)
    assert len(parts) > 2
    for part in parts:
        assert part.startswith("<b>") and part.endswith("</b>")
        assert_valid_telegram_html(part)
    wa = render_parts("**" + " ".join(["word"] * 60) + "**", "whatsapp", 100)
    assert all(p.startswith("*w") and p.endswith("d*") for p in wa)


def test_a_huge_message_is_split_quickly() -> None:
    text = ("A sentence with **bold** and `code`. " * 3000) + "*" * 10_000 + "_" * 10_000
    start = time.perf_counter()
    parts = render_parts(text, "telegram", 4096)
    assert time.perf_counter() - start < 5
    assert all(len(p) <= 4096 for p in parts)
    for part in parts:
        assert_valid_telegram_html(part)


def test_control_characters_and_lone_surrogates_are_dropped() -> None:
    assert render_parts("a\x00b\x07c\ud800d\r\ne", "telegram", 100) == ["abcd\ne"]


def test_a_tiny_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        render_parts("hi", "plain", 3)


# -- properties ---------------------------------------------------------------------

ALLOWED_TAGS = {"b", "i", "s", "code", "pre", "a", "blockquote"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"tag <{tag}> is not Telegram HTML")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:] or 'anything'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def assert_valid_telegram_html(part: str) -> None:
    parser = _Balance()
    parser.feed(part)
    parser.close()
    assert not parser.errors, (parser.errors, part)
    assert not parser.stack, (f"unclosed {parser.stack}", part)
    assert not re.search(r"&(?!amp;|lt;|gt;|quot;)", part), part


def content(text: str, fmt: TextFormat) -> str:
    """The words of a rendering, without markup or whitespace."""
    if fmt == "telegram":
        parser = _Balance()
        parser.feed(text)
        parser.close()
        text = "".join(parser.data)
    elif fmt == "whatsapp":
        text = re.sub(r"[*_~`]", "", text)
    return re.sub(r"\s", "", text)


FRAGMENTS = [
    "word",
    "Another",
    " ",
    " ",
    "\n",
    "\n\n",
    ". ",
    "! ",
    "*",
    "**",
    "_",
    "__",
    "~~",
    "`",
    "```",
    "```py\n",
    "\n```\n",
    "# ",
    "- ",
    "1. ",
    "> ",
    "[link](https://x.io/a_b)",
    "<https://y.io>",
    "[",
    "](",
    ")",
    "<",
    ">",
    "&",
    "\\",
    "😀",
    "👨\u200d👩\u200d👧",
    "é",
    "\t",
    "x" * 150,
]

markdown_texts = st.lists(st.sampled_from(FRAGMENTS), max_size=120).map("".join) | st.text(
    max_size=600
)


@settings(max_examples=300, deadline=None)
@given(
    markdown_texts,
    st.sampled_from(["whatsapp", "telegram", "plain"]),
    st.integers(120, 700) | st.sampled_from([4000, 4096]),
)
def test_parts_fit_are_not_empty_and_lose_nothing(
    markdown: str, fmt: TextFormat, max_len: int
) -> None:
    parts = render_parts(markdown, fmt, max_len)
    for part in parts:
        assert 0 < len(part) <= max_len
        assert part.strip()
        if fmt == "telegram":
            assert_valid_telegram_html(part)
        if fmt == "whatsapp":
            fences = [ln for ln in part.split("\n") if ln == "```"]
            assert len(fences) % 2 == 0, part  # every code block closed within its part
    whole = render(markdown, fmt, max_len)
    assert "".join(content(p, fmt) for p in parts) == content(whole, fmt)
    if fmt == "telegram":
        assert_valid_telegram_html(whole)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=400))
def test_text_without_markup_comes_through_unchanged(text: str) -> None:
    text = re.sub(r"[*_~`\[\]<>#\\>+-]|\d[.)]", "", text).strip()
    parts = render_parts(text, "plain", 4000)
    assert "".join(parts).split() == text.split()


def test_rendering_the_same_short_reply_again_gives_the_same_fresh_parts() -> None:
    text = "**Status**\n- one\n- two"
    first = render_parts(text, "whatsapp", 4000)
    first.append("changed by the caller")
    assert render_parts(text, "whatsapp", 4000) == ["*Status*\n• one\n• two"]
    assert render_parts(text, "telegram", 4096) == ["<b>Status</b>\n• one\n• two"]


def test_a_plain_text_fence_does_not_open_a_whatsapp_code_block() -> None:
    # "\t```" is not a fence (a tab indent), so it is text; sent as is, WhatsApp
    # would take the lone ``` as the start of a code block.
    parts = render_parts("\t```", "whatsapp", 120)
    assert parts and all("```" not in p for p in parts)
