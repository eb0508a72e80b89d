"""search_files' pattern engines: how long a pathological pattern takes, and what the loop feels.

Prints figures; not a test. For ``(a+)+$`` over ``n`` a's and a ``!`` (no
match; every split of the a's is tried by a backtracking engine), it times
Python's ``re`` (small n only: each extra ``a`` doubles its time), RE2
(``google-re2``, what search_files uses first) and the ``regex`` package
with a time limit (search_files' fallback for back-references). Each search
runs in a thread while a coroutine ticks every millisecond; "loop stall" is
the longest gap the event loop saw (``re`` holds the GIL, so it stalls the
loop for as long as it runs, thread or not).

    .venv/bin/python bench/search_patterns.py
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

import re2
import regex

PATTERN = "(a+)+$"


async def measure(search: Callable[[], object]) -> tuple[float, float]:
    """(seconds the search took, longest event-loop stall in seconds)."""
    stall = 0.0
    done = False

    async def tick() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.001)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    with contextlib.suppress(TimeoutError):
        await asyncio.to_thread(search)
    took = time.perf_counter() - t0
    done = True
    await ticker
    return took, stall


#: A pattern the regex package cannot optimise away (it does for ``(a+)+$``).
HARD = "(a|aa)+$"


def bounded_regex(line: str) -> object:
    return regex.compile(HARD).search(line, timeout=1.0, concurrent=True)


async def main() -> None:
    print(f"pattern {PATTERN!r} over 'a' * n + '!'")
    print(f"{'engine':<28}{'n':>7}{'search':>12}{'loop stall':>14}")
    for n in (18, 20, 22, 24):
        line = "a" * n + "!"
        took, stall = await measure(lambda line=line: re.compile(PATTERN).search(line))
        print(f"{'re (stdlib)':<28}{n:>7}{took * 1000:>10.1f} ms{stall * 1000:>11.1f} ms")
    estimate = took * 2 ** (34 - 24) / 60
    print(
        f"{'re (stdlib)':<28}{34:>7}  ≈ {estimate:.0f} min (2^10 × n=24), the loop stalled all along"
    )
    for n in (34, 1000, 100_000):
        line = "a" * n + "!"
        took, stall = await measure(lambda line=line: re2.compile(PATTERN).search(line))
        print(f"{'re2 (google-re2)':<28}{n:>7}{took * 1000:>10.2f} ms{stall * 1000:>11.1f} ms")
    line = "a" * 34 + "!"
    took, stall = await measure(lambda: bounded_regex(line))
    label = f"regex {HARD}, timeout=1 s"
    print(f"{label:<28}{34:>7}{took * 1000:>10.0f} ms{stall * 1000:>11.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
