"""``search_files`` patterns: RE2, linear in the text whatever the pattern.

Python's ``re`` backtracks: ``(a+)+$`` over a line of 34 ``a`` and a ``!``
takes hours, holding the GIL the whole time (so even run in a thread it
froze Polpo's event loop). RE2 (``google-re2``) never backtracks: every
search is linear in the length of the line, and short lines take
microseconds (``bench/search_patterns.py`` measures it). Patterns RE2 does
not accept (back-references, look-around) or that do not parse are searched
as plain text, as invalid patterns always were.
"""

from __future__ import annotations

from typing import Any

import re2

#: A pattern longer than this is refused (RE2 would also refuse very large programs).
MAX_PATTERN = 1_000


def _options() -> Any:
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print every rejected pattern on stderr
    return opts


class LinePattern:
    """What ``search_files`` looks for in each line (UTF-8 bytes, no line end)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._needle = pattern.encode("utf-8")
        self._rx: Any = None
        try:
            self._rx = re2.compile(self._needle, _options())
        except re2.error:
            self._rx = None

    @property
    def literal(self) -> bool:
        """True when the pattern is searched as plain text."""
        return self._rx is None

    def search(self, line: bytes) -> bool:
        if self._rx is None:
            return self._needle in line
        return self._rx.search(line) is not None
