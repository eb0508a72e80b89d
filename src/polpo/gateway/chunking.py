"""Split rendered text into parts a channel accepts, without breaking its markup.

A renderer produces :class:`Text`, :class:`Open` and :data:`CLOSE` tokens;
this module cuts them into parts of at most ``max_len`` characters. Where a
part ends inside markup (a code block, a bold run, a Telegram ``<pre>``),
the markup is closed at the end of the part and opened again at the start of
the next, so every part stands on its own.

Cut points, in order of preference: a paragraph break, a line break, the end
of a sentence, a space, and as a last resort anywhere (but not inside an HTML
entity, a surrogate pair or an emoji sequence). Whitespace at a cut is
dropped. Sizes are counted in UTF-16 code units — how Telegram and WhatsApp
count — which is never less than Python's ``len``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Open:
    markup: str
    close: str


@dataclass(frozen=True)
class Close:
    pass


CLOSE = Close()
Token = Text | Open | Close


class NoRoom(Exception):
    """Markup that must be reopened leaves no room for text in a part."""


def size(s: str) -> int:
    """Length in UTF-16 code units."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def join(tokens: Iterable[Token], escape: Callable[[str], str]) -> str:
    """The whole rendering, unsplit."""
    out: list[str] = []
    stack: list[Open] = []
    for t in tokens:
        if isinstance(t, Text):
            out.append(escape(t.text))
        elif isinstance(t, Open):
            stack.append(t)
            out.append(t.markup)
        else:
            out.append(stack.pop().close)
    return "".join(out)


# -- units: the smallest pieces a part is made of ------------------------------------

_TEXT, _OPEN, _CLOSE = 0, 1, 2
_PARA, _LINE, _SENTENCE, _WORD = 0, 1, 2, 3
_SENTENCE_END = frozenset(".!?…")
_CLOSERS = frozenset(")\"'”’»]")
_ZWJ = "\u200d"


class _Units:
    """The rendering as parallel lists, one entry per character or tag (fast on 100k)."""

    def __init__(self, tokens: Iterable[Token], escape: Callable[[str], str]) -> None:
        self.kind: list[int] = []
        self.s: list[str] = []  # what the unit adds to a part
        self.ch: list[str] = []  # the character ("" for a tag)
        self.tag: list[Open | None] = []
        stack: list[Open] = []
        for t in tokens:
            if isinstance(t, Text):
                n = len(t.text)
                self.kind.extend([_TEXT] * n)
                self.s.extend(map(escape, t.text))
                self.ch.extend(t.text)
                self.tag.extend([None] * n)
            else:
                tag = t if isinstance(t, Open) else stack.pop()
                if isinstance(t, Open):
                    stack.append(t)
                self.kind.append(_OPEN if isinstance(t, Open) else _CLOSE)
                self.s.append(tag.markup if isinstance(t, Open) else tag.close)
                self.ch.append("")
                self.tag.append(tag)
        self.size = [size(x) for x in self.s]
        self.space = [c.isspace() if c else False for c in self.ch]

    def __len__(self) -> int:
        return len(self.kind)

    def joined(self, j: int) -> bool:
        """True when cutting before unit ``j`` would break one visible character."""
        prev, ch = self.ch[j - 1], self.ch[j]
        if not prev or not ch:
            return False
        return (
            prev == _ZWJ
            or ch == _ZWJ
            or unicodedata.combining(ch) != 0
            or "\ufe00" <= ch <= "\ufe0f"
            or "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin tones
            or ("\U0001f1e6" <= prev <= "\U0001f1ff" and "\U0001f1e6" <= ch <= "\U0001f1ff")
        )

    def cut_class(self, j: int, start: int) -> int:
        """How good a cut just before the whitespace unit ``j`` is (lower is better)."""
        ch = self.ch
        if ch[j] == "\n":
            if (j + 1 < len(ch) and ch[j + 1] == "\n") or (j - 1 >= start and ch[j - 1] == "\n"):
                return _PARA
            return _LINE
        p1 = ch[j - 1] if j - 1 >= start else ""
        p2 = ch[j - 2] if j - 2 >= start else ""
        if p1 in _SENTENCE_END or (p1 in _CLOSERS and p2 in _SENTENCE_END):
            return _SENTENCE
        return _WORD

    def skip_cut_space(self, i: int) -> int:
        """Where a part starts after a cut at ``i``: past the whitespace, keeping a line's indent."""
        r, last_newline = i, -1
        while r < len(self.kind) and self.space[r]:
            if self.ch[r] == "\n":
                last_newline = r
            r += 1
        if r == len(self.kind):
            return r
        return last_newline + 1 if last_newline >= 0 else r

    def stack_after(self, stack: list[Open], i: int, j: int) -> list[Open]:
        cur = list(stack)
        for k in range(i, j):
            if self.kind[k] == _OPEN:
                cur.append(self.tag[k])  # type: ignore[arg-type]
            elif self.kind[k] == _CLOSE:
                cur.pop()
        return cur


# -- splitting --------------------------------------------------------------------------


def split(tokens: Iterable[Token], max_len: int, escape: Callable[[str], str]) -> list[str]:
    """Parts of at most ``max_len`` (UTF-16 units), each with balanced markup.

    Raises :class:`NoRoom` if open markup leaves no room for a single character.
    """
    tokens = list(tokens)
    if not any(isinstance(t, Text) and t.text.strip() for t in tokens):
        return []
    whole = join(tokens, escape)
    if size(whole) <= max_len:
        return [whole.strip()]
    u = _Units(tokens, escape)
    n = len(u)
    parts: list[str] = []
    stack: list[Open] = []  # markup open at unit i
    i = 0
    while i < n:
        i = u.skip_cut_space(i)
        if i >= n:
            break
        cost = sum(size(t.markup) for t in stack)
        closing = sum(size(t.close) for t in stack)
        best: dict[int, int] = {}
        j = i
        while j < n:
            kind = u.kind[j]
            after = closing
            if kind == _OPEN:
                after += size(u.tag[j].close)  # type: ignore[union-attr]
            elif kind == _CLOSE:
                after -= u.size[j]
            if cost + u.size[j] + after > max_len:
                break
            if j > i and u.space[j]:
                best[u.cut_class(j, i)] = j
            cost += u.size[j]
            closing = after
            j += 1
        if j == n:
            _emit(parts, u, stack, i, n, u.stack_after(stack, i, n))
            break
        cut = best[min(best)] if best else _hard_cut(u, i, j)
        cut_stack = u.stack_after(stack, i, cut)
        _emit(parts, u, stack, i, cut, cut_stack)
        i, stack = cut, cut_stack
    return parts


def _hard_cut(u: _Units, i: int, j: int) -> int:
    """Cut before unit ``j`` (the first that does not fit), stepping back off joined characters."""
    cut = j
    while cut - 1 > i and u.joined(cut):
        cut -= 1
    while cut - 1 > i and u.kind[cut - 1] == _OPEN:
        cut -= 1  # an opening tag belongs with the text after it
    if cut <= i:
        raise NoRoom
    return cut


def _emit(
    parts: list[str], u: _Units, opened: list[Open], i: int, end: int, still_open: list[Open]
) -> None:
    """Append one part: reopen ``opened``, units ``i:end``, close ``still_open``; skip empty ones."""
    while end > i and u.space[end - 1]:
        end -= 1
    items: list[tuple[int, str]] = [(_OPEN, t.markup) for t in opened]
    for k in range(i, end):
        if u.kind[k] == _CLOSE and items and items[-1][0] == _OPEN:
            items.pop()  # an empty pair, e.g. "<b></b>"
        else:
            items.append((u.kind[k], u.s[k]))
    for t in reversed(still_open):
        if items and items[-1][0] == _OPEN:
            items.pop()
        else:
            items.append((_CLOSE, t.close))
    if any(kind == _TEXT and not s.isspace() for kind, s in items):
        parts.append("".join(s for _, s in items))
