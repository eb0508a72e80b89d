"""The Markdown a chat model writes, parsed into a small tree.

Not CommonMark: the subset models use in chat answers — fenced code blocks,
``#`` headings, bullet and numbered lists, ``>`` quotes, rules, and inline
``**bold**``/``__bold__``, ``*italic*``/``_italic_``, ``~~strike~~``,
``code``, ``[text](url)`` and ``<url>``. Lines are kept as written (a chat
message's line breaks are meant), so inline markup is parsed per line.

Built for hostile input too: linear-ish time on a 100k-character line full
of unmatched ``*`` (closers are found by bisection over precomputed
positions, not by rescanning), bounded nesting, and every character of the
input ends up somewhere in the tree.
"""

from __future__ import annotations

import bisect
import re
import string
from dataclasses import dataclass
from typing import Literal

Style = Literal["bold", "italic", "strike"]

MAX_DEPTH = 6


# -- writing literal text ------------------------------------------------------------

_SPECIAL = re.compile(r"([\\`*_~\[\]<>#|])")


def escape(text: str) -> str:
    """``text`` shown literally inside Markdown: whatever it holds (``**``, ``[x](url)``,
    a backtick fence), it never becomes markup or a link. For every string that came
    from a stranger or a model (display names, task titles, reasons)."""
    return _SPECIAL.sub(r"\\\1", text)


def literal_line(text: str, limit: int = 60) -> str:
    """:func:`escape` of ``text`` on one line (runs of whitespace, newlines included,
    become one space), clipped to ``limit`` characters: a name cannot forge lines."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


# -- the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Span:
    style: Style
    children: tuple[Inline, ...]


@dataclass(frozen=True)
class Link:
    children: tuple[Inline, ...]
    url: str


Inline = Text | Code | Span | Link


@dataclass(frozen=True)
class Line:
    """One line of output: ``kind`` says how it is marked up; ``prefix`` is a list marker."""

    kind: Literal["text", "heading", "item", "rule"]
    inlines: tuple[Inline, ...] = ()
    prefix: str = ""


@dataclass(frozen=True)
class Quote:
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class CodeBlock:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Blank:
    pass


Block = Line | Quote | CodeBlock | Blank


# -- blocks -------------------------------------------------------------------------

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_ORDERED = re.compile(r"^([ \t]*)(\d{1,9}[.)])[ \t]+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?(.*)$")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,20}$")


def parse_markdown(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            i = _code_block(lines, i, fence, blocks)
            continue
        quote = _QUOTE.match(line)
        if quote:
            quoted: list[Line] = []
            while i < len(lines) and (q := _QUOTE.match(lines[i])):
                quoted.append(_line(q.group(1)))
                i += 1
            blocks.append(Quote(tuple(quoted)))
            continue
        if line.strip():
            blocks.append(_line(line))
        elif blocks and not isinstance(blocks[-1], Blank):
            blocks.append(Blank())
        i += 1
    while blocks and isinstance(blocks[-1], Blank):
        blocks.pop()
    return blocks


def _code_block(lines: list[str], i: int, fence: re.Match[str], blocks: list[Block]) -> int:
    indent, marker, info = len(fence.group(1)), fence.group(2), fence.group(3)
    closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
    body: list[str] = []
    i += 1
    while i < len(lines) and not closing.match(lines[i]):
        body.append(_dedent(lines[i], indent))
        i += 1
    language = info if _LANGUAGE.match(info) else ""
    blocks.append(CodeBlock("\n".join(body), language))
    return i + 1  # past the closing fence (or the end: an unclosed block runs to the end)


def _dedent(line: str, n: int) -> str:
    k = 0
    while k < n and k < len(line) and line[k] == " ":
        k += 1
    return line[k:]


def _line(line: str) -> Line:
    line = line.rstrip()
    if m := _HEADING.match(line):
        return Line("heading", parse_inline(m.group(1) or ""))
    if _RULE.match(line):
        return Line("rule")
    if m := _BULLET.match(line):
        return Line("item", parse_inline(m.group(2)), prefix=_indent(m.group(1)) + "• ")
    if m := _ORDERED.match(line):
        return Line("item", parse_inline(m.group(3)), prefix=_indent(m.group(1)) + m.group(2) + " ")
    return Line("text", parse_inline(line))


def _indent(lead: str) -> str:
    return " " * len(lead.expandtabs(4))


# -- inlines --------------------------------------------------------------------------

_PUNCT = frozenset(string.punctuation)
_LINK = re.compile(r"\[([^\[\]\n]{1,1000})\]\(\s*<?([^\s()<>]{1,2000})>?(?:\s+\"[^\"\n]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto|tg):[^\s<>]{1,2000})>")


def parse_inline(text: str) -> tuple[Inline, ...]:
    return tuple(_InlineParser(text).parse(0, len(text), 0, in_link=False))


_EMPHASIS: dict[int, tuple[Style, ...]] = {1: ("italic",), 2: ("bold",), 3: ("bold", "italic")}


@dataclass(frozen=True)
class _Run:
    char: str
    length: int
    can_open: bool
    can_close: bool


class _InlineParser:
    def __init__(self, s: str) -> None:
        self.s = s
        self.escaped = self._escapes()
        self.code = self._code_spans()
        self.runs: dict[int, _Run] = {}
        self.closers: dict[tuple[str, int], list[int]] = {}
        self._delimiter_runs()

    # precomputation

    def _escapes(self) -> set[int]:
        """Positions of backslashes that escape the next character."""
        s, out, i = self.s, set(), 0
        while i < len(s) - 1:
            if s[i] == "\\" and s[i + 1] in _PUNCT:
                out.add(i)
                i += 2
            else:
                i += 1
        return out

    def _code_spans(self) -> dict[int, int]:
        """Start of a backtick run → start of the run of equal length that closes it."""
        s = self.s
        runs: list[tuple[int, int]] = []
        i = 0
        while i < len(s):
            if s[i] == "`" and (i - 1) not in self.escaped:
                j = i
                while j < len(s) and s[j] == "`":
                    j += 1
                runs.append((i, j - i))
                i = j
            else:
                i += 1
        by_length: dict[int, list[int]] = {}
        for pos, k in runs:
            by_length.setdefault(k, []).append(pos)
        spans: dict[int, int] = {}
        cursor = 0
        for pos, k in runs:
            if pos < cursor:
                continue
            same = by_length[k]
            n = bisect.bisect_right(same, pos)
            if n < len(same):
                spans[pos] = same[n]
                cursor = same[n] + k
        return spans

    def _in_code(self) -> list[tuple[int, int]]:
        return sorted((start, end) for start, end in self.code.items())

    def _delimiter_runs(self) -> None:
        s = self.s
        code = self._in_code()
        ci = 0
        i = 0
        while i < len(s):
            while ci < len(code) and code[ci][1] < i:
                ci += 1
            if ci < len(code) and code[ci][0] <= i <= code[ci][1]:
                i = code[ci][1] + 1
                continue
            c = s[i]
            if c not in "*_~" or (i - 1) in self.escaped:
                i += 1
                continue
            j = i
            while j < len(s) and s[j] == c:
                j += 1
            before = s[i - 1] if i else " "
            after = s[j] if j < len(s) else " "
            can_open = not after.isspace()
            can_close = not before.isspace()
            if c == "_" or (c == "*" and j - i == 1):
                # snake_case_names and 2*3*4 are words, not emphasis
                can_open = can_open and not before.isalnum()
                can_close = can_close and not after.isalnum()
            run = _Run(c, j - i, can_open, can_close)
            self.runs[i] = run
            if can_close:
                self.closers.setdefault((c, j - i), []).append(i)
            i = j

    # parsing

    def parse(self, i: int, end: int, depth: int, *, in_link: bool) -> list[Inline]:
        s = self.s
        out: list[Inline] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                out.append(Text("".join(buf)))
                buf.clear()

        while i < end:
            c = s[i]
            if i in self.escaped and i + 1 < end:
                buf.append(s[i + 1])
                i += 2
                continue
            if c == "`" and i in self.code:
                close = self.code[i]
                k = 0
                while s[i + k] == "`":
                    k += 1
                if close + k <= end:
                    flush()
                    out.append(Code(_code_text(s[i + k : close])))
                    i = close + k
                    continue
            if c == "[" and not in_link and depth < MAX_DEPTH:
                m = _LINK.match(s, i, end)
                if m:
                    flush()
                    label = self.parse(m.start(1), m.end(1), depth + 1, in_link=True)
                    out.append(Link(tuple(label), m.group(2)))
                    i = m.end()
                    continue
            if c == "<" and not in_link:
                m = _AUTOLINK.match(s, i, end)
                if m:
                    flush()
                    out.append(Link((Text(m.group(1)),), m.group(1)))
                    i = m.end()
                    continue
            run = self.runs.get(i)
            if run is not None:
                span = self._span(i, run, end, depth, in_link)
                if span is not None:
                    flush()
                    node, i = span
                    out.append(node)
                else:
                    buf.append(s[i : i + run.length])
                    i += run.length
                continue
            buf.append(c)
            i += 1
        flush()
        return out

    def _span(
        self, i: int, run: _Run, end: int, depth: int, in_link: bool
    ) -> tuple[Inline, int] | None:
        styles: tuple[Style, ...]
        if run.char == "~":
            styles = ("strike",) if run.length == 2 else ()
        else:
            styles = _EMPHASIS.get(run.length, ())
        if not styles or not run.can_open or depth >= MAX_DEPTH:
            return None
        candidates = self.closers.get((run.char, run.length), [])
        n = bisect.bisect_left(candidates, i + run.length)
        if n >= len(candidates) or candidates[n] + run.length > end:
            return None
        close = candidates[n]
        if close == i + run.length:
            return None  # nothing inside
        node: Inline
        children = tuple(self.parse(i + run.length, close, depth + 1, in_link=in_link))
        for style in reversed(styles):
            node = Span(style, children)
            children = (node,)
        return node, close + run.length


def _code_text(text: str) -> str:
    if len(text) >= 2 and text[0] == " " and text[-1] == " " and text.strip():
        return text[1:-1]
    return text


def plain_text(inlines: tuple[Inline, ...] | list[Inline]) -> str:
    """The words of some inlines, without markup."""
    out: list[str] = []
    for node in inlines:
        if isinstance(node, Text | Code):
            out.append(node.text)
        else:
            out.append(plain_text(node.children))
    return "".join(out)
