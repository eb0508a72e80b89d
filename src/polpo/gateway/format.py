"""Outbound formatting: the agent's Markdown → each channel's markup, in parts.

:func:`render_parts` is what the outbox calls before ``Channel.send``:

* ``whatsapp`` — WhatsApp's own markup: ``*bold*``, ``_italic_``,
  ``~strike~``, ```` `code` ````, ```` ``` ```` blocks, ``> `` quotes;
  headings become bold lines, links ``text (url)``, bullets ``• ``. WhatsApp
  has no escape character, so a literal marker that could format
  (an escaped ``*URGENT*`` in the Markdown) becomes a look-alike (∗, ˍ, ∼, ˋ).
* ``telegram`` — Telegram's HTML (``parse_mode=HTML``): ``<b> <i> <s> <code>
  <pre> <a href> <blockquote>``; every other ``& < >`` is escaped, so any
  text gives valid HTML, and every part is balanced on its own.
* ``plain`` — the words without markup.

Then the text is cut into parts of at most ``max_len`` characters (WhatsApp
4000, Telegram 4096) at paragraph, line, sentence, then word boundaries
(see :mod:`polpo.gateway.chunking`); a code block cut in two is closed at the
end of one part and reopened at the start of the next.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Iterator

from polpo.channels.base import TextFormat
from polpo.gateway import chunking
from polpo.gateway.chunking import CLOSE, Open, Text, Token
from polpo.gateway.markdown import (
    Blank,
    Block,
    Code,
    CodeBlock,
    Inline,
    Line,
    Link,
    Quote,
    Span,
    Style,
    parse_markdown,
    plain_text,
)

#: Below this a part cannot hold reopened markup and some text.
MIN_PART_LENGTH = 16

RULE = "———"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_SAFE_HREF = re.compile(r"^(?:https?://|tg://|mailto:)[^\s<>\"']+$", re.IGNORECASE)


def render_parts(markdown: str, text_format: TextFormat, max_len: int) -> list[str]:
    """``markdown`` in ``text_format``, cut into parts of at most ``max_len`` characters.

    Empty (or blank) input gives no parts. Never raises for any text.
    """
    if max_len < MIN_PART_LENGTH:
        raise ValueError(f"max_len must be at least {MIN_PART_LENGTH}; got {max_len}")
    if len(markdown) <= _CACHE_TEXT_MAX:
        # the same short replies recur (/help, /status while nothing changes, errors)
        return list(_render_parts_cached(markdown, text_format, max_len))
    return _render_parts(markdown, text_format, max_len)


#: Texts up to this length are memoised (at most 256 of them: about 2 MB at worst).
_CACHE_TEXT_MAX = 4096


@functools.lru_cache(maxsize=256)
def _render_parts_cached(markdown: str, text_format: TextFormat, max_len: int) -> tuple[str, ...]:
    return tuple(_render_parts(markdown, text_format, max_len))


def _render_parts(markdown: str, text_format: TextFormat, max_len: int) -> list[str]:
    blocks = parse_markdown(clean(markdown))
    if not blocks:
        return []
    escape = _escape_for(text_format)
    try:
        return chunking.split(render_tokens(blocks, text_format, max_len), max_len, escape)
    except chunking.NoRoom:
        # Markup too deep to reopen in a part this small: send the words alone.
        return chunking.split(render_tokens(blocks, "plain", max_len), max_len, escape)


def render(markdown: str, text_format: TextFormat, max_len: int | None = None) -> str:
    """``markdown`` in ``text_format`` as one string, unsplit.

    ``max_len`` only matters as :func:`render_parts` uses it: a link whose tag
    would take more than an eighth of a part is written out as ``text (url)``.
    """
    blocks = parse_markdown(clean(markdown))
    return chunking.join(render_tokens(blocks, text_format, max_len), _escape_for(text_format))


def clean(text: str) -> str:
    """Line endings normalised; control characters and lone surrogates removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip("\n")


def _escape_for(text_format: TextFormat) -> Callable[[str], str]:
    if text_format == "telegram":
        return lambda s: html.escape(s, quote=False)
    return lambda s: s


def render_tokens(
    blocks: list[Block], text_format: TextFormat, max_len: int | None = None
) -> list[Token]:
    renderer = _Renderer(text_format, max_len)
    return list(renderer.blocks(blocks))


class _Renderer:
    def __init__(self, text_format: TextFormat, max_len: int | None) -> None:
        self.fmt = text_format
        # A link tag is reopened in every part it spans, so a long URL is written out instead.
        self.max_href = (max_len // 8) if max_len else 2000

    # blocks

    def blocks(self, blocks: list[Block]) -> Iterator[Token]:
        for n, block in enumerate(blocks):
            if n:
                yield Text("\n")
            if isinstance(block, Blank):
                continue
            if isinstance(block, Line):
                yield from self.line(block)
            elif isinstance(block, Quote):
                yield from self.quote(block)
            else:
                yield from self.code_block(block)

    def line(self, line: Line) -> Iterator[Token]:
        if line.kind == "rule":
            yield Text(RULE)
            return
        if line.prefix:
            yield Text(line.prefix)
        if line.kind == "heading":
            yield from self.styled("bold", line.inlines, frozenset())
        else:
            yield from self.inlines(line.inlines, frozenset())

    def quote(self, quote: Quote) -> Iterator[Token]:
        if self.fmt == "telegram":
            yield Open("<blockquote>", "</blockquote>")
        for n, line in enumerate(quote.lines):
            if n:
                yield Text("\n")
            if self.fmt != "telegram":
                yield Text("> ")
            yield from self.line(line)
        if self.fmt == "telegram":
            yield CLOSE

    def code_block(self, block: CodeBlock) -> Iterator[Token]:
        if self.fmt == "plain":
            yield Text(block.text)
            return
        text = block.text
        if self.fmt == "whatsapp":
            # A ``` inside would end WhatsApp's block early: break it with a zero-width space.
            text = text.replace("```", "``\u200b`")
            yield Open("```\n", "\n```")
        elif block.language:
            yield Open(
                f'<pre><code class="language-{html.escape(block.language)}">', "</code></pre>"
            )
        else:
            yield Open("<pre>", "</pre>")
        yield Text(text or " ")
        yield CLOSE

    # inlines

    def inlines(self, nodes: tuple[Inline, ...], active: frozenset[Style]) -> Iterator[Token]:
        for node in nodes:
            if isinstance(node, Code):
                yield from self.code(node.text)
            elif isinstance(node, Span):
                yield from self.styled(node.style, node.children, active)
            elif isinstance(node, Link):
                yield from self.link(node, active)
            elif self.fmt == "whatsapp":
                yield Text(whatsapp_literal(node.text))
            else:
                yield Text(node.text)

    def styled(
        self, style: Style, children: tuple[Inline, ...], active: frozenset[Style]
    ) -> Iterator[Token]:
        if style in active or self.fmt == "plain":
            yield from self.inlines(children, active)
            return
        yield _MARKUP[self.fmt][style]
        yield from self.inlines(children, active | {style})
        yield CLOSE

    def code(self, text: str) -> Iterator[Token]:
        if self.fmt == "plain" or not text:
            yield Text(text)
            return
        if self.fmt == "whatsapp":
            yield Open("`", "`")
            yield Text(text.replace("`", "ˋ"))  # a backtick inside would end it early
        else:
            yield Open("<code>", "</code>")
            yield Text(text)
        yield CLOSE

    def link(self, link: Link, active: frozenset[Style]) -> Iterator[Token]:
        label = plain_text(link.children)
        if self.fmt == "telegram" and _SAFE_HREF.match(link.url) and len(link.url) <= self.max_href:
            yield Open(f'<a href="{html.escape(link.url, quote=True)}">', "</a>")
            yield from self.inlines(link.children, active)
            yield CLOSE
            return
        yield from self.inlines(link.children, active)
        if label.strip() != link.url:
            yield Text(f" ({link.url})")


#: WhatsApp markers → look-alikes that no WhatsApp client formats.
_WHATSAPP_LOOKALIKE = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
_WHATSAPP_MARKER = re.compile(r"[*_~`]")


def whatsapp_literal(text: str) -> str:
    """Literal text for WhatsApp, which has no escape character: a marker that could
    open or close markup (one at a word boundary) becomes a look-alike, so a name
    like ``*URGENT*`` or ``_x_`` shows as written instead of bold or italic.
    Markers inside words (``snake_case``, ``2*3``) never format and are kept."""
    if _WHATSAPP_MARKER.search(text) is None:
        return text
    out = list(text)
    last = len(text) - 1
    for m in _WHATSAPP_MARKER.finditer(text):
        i = m.start()
        inside = 0 < i < last and text[i - 1].isalnum() and text[i + 1].isalnum()
        if not inside:
            out[i] = _WHATSAPP_LOOKALIKE[text[i]]
    return "".join(out)


_MARKUP: dict[str, dict[Style, Open]] = {
    "whatsapp": {
        "bold": Open("*", "*"),
        "italic": Open("_", "_"),
        "strike": Open("~", "~"),
    },
    "telegram": {
        "bold": Open("<b>", "</b>"),
        "italic": Open("<i>", "</i>"),
        "strike": Open("<s>", "</s>"),
    },
}
