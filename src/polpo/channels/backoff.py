"""Exponential backoff with jitter for reconnecting channels: 1 s, 2 s, 4 s … 60 s, for ever.

Each delay is drawn between half and all of its step so that many hosts
restarted together do not reconnect in step (Telegram's polling loop,
WhatsApp's worker restarts). The random source is injected so tests see
exact delays."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        initial: float = 1.0,
        cap: float = 60.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        step = min(self.cap, self.initial * (2.0 ** min(self.failures, 32)))
        self.failures += 1
        return step / 2 + step / 2 * self._rng()

    def reset(self) -> None:
        self.failures = 0
