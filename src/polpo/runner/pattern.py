"""``search_files`` patterns: never an unbounded search, never a frozen event loop.

Python's ``re`` backtracks: ``(a+)+$`` over a line of 34 ``a`` and a ``!``
runs for about an hour holding the GIL, so even in a thread it froze
Polpo's event loop. Patterns go to RE2 (``google-re2``) first: it never backtracks, every
search is linear in the line's length. The few patterns RE2 does not accept
(back-references, look-around) go to the ``regex`` package, which releases
the GIL while it matches (``concurrent=True``) and stops at a time limit
(``timeout=``). A pattern neither compiles is searched as plain text, as an
invalid pattern always was. ``bench/search_patterns.py`` measures the three.
"""

from __future__ import annotations

import contextlib
from typing import Any

import re2
import regex

#: A pattern longer than this is refused (RE2 would also refuse very large programs).
MAX_PATTERN = 1_000


def _re2_options() -> Any:
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print every rejected pattern on stderr
    return opts


class LinePattern:
    """What ``search_files`` looks for in each line (UTF-8 bytes, no line end)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._needle = pattern.encode("utf-8")
        self._re2: Any = None
        self._backtracking: Any = None
        try:
            self._re2 = re2.compile(self._needle, _re2_options())
        except re2.error:
            with contextlib.suppress(regex.error, OverflowError, RecursionError):
                self._backtracking = regex.compile(self._needle)

    @property
    def engine(self) -> str:
        """``re2``, ``regex`` (time-bounded) or ``text`` (searched as plain text)."""
        if self._re2 is not None:
            return "re2"
        return "regex" if self._backtracking is not None else "text"

    def search(self, line: bytes, *, seconds: float) -> bool:
        """Whether ``line`` matches; :class:`TimeoutError` past ``seconds`` (backtracking only)."""
        if self._re2 is not None:
            return self._re2.search(line) is not None
        if self._backtracking is not None:
            if seconds <= 0:
                raise TimeoutError("no time left")
            return self._backtracking.search(line, timeout=seconds, concurrent=True) is not None
        return self._needle in line
