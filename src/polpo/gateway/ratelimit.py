"""Per-peer rate limit (SPEC §3): beyond N messages a minute, one "slow down"
reply, then silence until the window has room again. In memory: a restart
forgives everyone, which is what a user would expect anyway."""

from __future__ import annotations

from collections import deque
from typing import Literal

from polpo.clock import Clock

WINDOW_SECONDS = 60.0

Verdict = Literal["ok", "warn", "drop"]


class RateLimiter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._warned: set[str] = set()

    def check(self, key: str, limit: int) -> Verdict:
        """Count one message from ``key``; ``limit`` 0 means no limit."""
        if limit <= 0:
            return "ok"
        now = self.clock.now()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) > 10_000:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        if len(hits) < limit:
            hits.append(now)
            self._warned.discard(key)
            return "ok"
        if key in self._warned:
            return "drop"
        self._warned.add(key)
        return "warn"

    def _prune(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - WINDOW_SECONDS]:
            del self._hits[key]
            self._warned.discard(key)
