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
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


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


@dataclass(frozen=True)
class _Unit:
    kind: int
    s: str  # what it adds to a part
    ch: str = ""  # the character, for text units
    tag: Open | None = None


def _units(tokens: Iterable[Token], escape: Callable[[str], str]) -> list[_Unit]:
    units: list[_Unit] = []
    stack: list[Open] = []
    for t in tokens:
        if isinstance(t, Text):
            units.extend(_Unit(_TEXT, escape(ch), ch) for ch in t.text)
        elif isinstance(t, Open):
            stack.append(t)
            units.append(_Unit(_OPEN, t.markup, tag=t))
        else:
            units.append(_Unit(_CLOSE, stack.pop().close))
    return units


def _space(u: _Unit) -> bool:
    return u.kind == _TEXT and u.ch.isspace()


def _joined(prev: _Unit, u: _Unit) -> bool:
    """True when cutting between ``prev`` and ``u`` would break one visible character."""
    if prev.kind != _TEXT or u.kind != _TEXT:
        return False
    ch = u.ch
    return (
        prev.ch == _ZWJ
        or ch == _ZWJ
        or unicodedata.combining(ch) != 0
        or "\ufe00" <= ch <= "\ufe0f"
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin tones
        or ("\U0001f1e6" <= prev.ch <= "\U0001f1ff" and "\U0001f1e6" <= ch <= "\U0001f1ff")
    )


def _cut_class(units: list[_Unit], j: int, start: int) -> int | None:
    """How good a cut just before unit ``j`` is (lower is better), or None."""
    u = units[j]
    if not _space(u):
        return None
    if u.ch == "\n":
        nxt = units[j + 1] if j + 1 < len(units) else None
        prev = units[j - 1] if j - 1 >= start else None
        if (nxt is not None and nxt.ch == "\n") or (prev is not None and prev.ch == "\n"):
            return _PARA
        return _LINE
    p1 = units[j - 1].ch if j - 1 >= start else ""
    p2 = units[j - 2].ch if j - 2 >= start else ""
    if p1 in _SENTENCE_END or (p1 in _CLOSERS and p2 in _SENTENCE_END):
        return _SENTENCE
    return _WORD


# -- splitting --------------------------------------------------------------------------


def split(tokens: Iterable[Token], max_len: int, escape: Callable[[str], str]) -> list[str]:
    """Parts of at most ``max_len`` (UTF-16 units), each with balanced markup.

    Raises :class:`NoRoom` if open markup leaves no room for a single character.
    """
    units = _units(tokens, escape)
    n = len(units)
    parts: list[str] = []
    stack: list[Open] = []  # markup open at unit i
    i = 0
    while i < n:
        i = _skip_cut_space(units, i)
        if i >= n:
            break
        cost = sum(size(t.markup) for t in stack)
        closing = sum(size(t.close) for t in stack)
        cur = list(stack)
        best: dict[int, tuple[int, list[Open]]] = {}
        j = i
        while j < n:
            u = units[j]
            if u.kind == _OPEN and u.tag is not None:
                after = closing + size(u.tag.close)
            elif u.kind == _CLOSE:
                after = closing - size(cur[-1].close)
            else:
                after = closing
            if cost + size(u.s) + after > max_len:
                break
            if j > i:
                klass = _cut_class(units, j, i)
                if klass is not None:
                    best[klass] = (j, list(cur))
            cost += size(u.s)
            closing = after
            if u.kind == _OPEN and u.tag is not None:
                cur.append(u.tag)
            elif u.kind == _CLOSE:
                cur.pop()
            j += 1
        if j == n:
            _emit(parts, stack, units[i:n], cur)
            break
        if best:
            cut, cut_stack = best[min(best)]
        else:
            cut, cut_stack = _hard_cut(units, i, j, stack)
        _emit(parts, stack, units[i:cut], cut_stack)
        i, stack = cut, cut_stack
    return parts


def _skip_cut_space(units: list[_Unit], i: int) -> int:
    """Where a part starts after a cut at ``i``: past the whitespace, keeping a line's indent."""
    r = i
    last_newline = -1
    while r < len(units) and _space(units[r]):
        if units[r].ch == "\n":
            last_newline = r
        r += 1
    if r == len(units):
        return r
    return last_newline + 1 if last_newline >= 0 else r


def _hard_cut(units: list[_Unit], i: int, j: int, stack: list[Open]) -> tuple[int, list[Open]]:
    """Cut before unit ``j`` (the first that does not fit), stepping back off joined characters."""
    cut = j
    while cut - 1 > i and _joined(units[cut - 1], units[cut]):
        cut -= 1
    while cut - 1 > i and units[cut - 1].kind == _OPEN:
        cut -= 1  # an opening tag belongs with the text after it
    if cut <= i:
        raise NoRoom
    cur = list(stack)
    for u in units[i:cut]:
        if u.kind == _OPEN and u.tag is not None:
            cur.append(u.tag)
        elif u.kind == _CLOSE:
            cur.pop()
    return cut, cur


def _emit(parts: list[str], opened: list[Open], body: list[_Unit], still_open: list[Open]) -> None:
    """Append one part: reopen ``opened``, the body, close ``still_open``; skip empty ones."""
    while body and _space(body[-1]):
        body = body[:-1]
    items: list[tuple[int, str]] = [(_OPEN, t.markup) for t in opened]
    for u in body:
        if u.kind == _CLOSE and items and items[-1][0] == _OPEN:
            items.pop()  # an empty pair, e.g. "<b></b>"
        else:
            items.append((u.kind, u.s))
    for t in reversed(still_open):
        if items and items[-1][0] == _OPEN:
            items.pop()
        else:
            items.append((_CLOSE, t.close))
    if any(kind == _TEXT and not s.isspace() for kind, s in items):
        parts.append("".join(s for _, s in items))
