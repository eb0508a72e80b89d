"""The clock, the sleep and the random source the WhatsApp channel waits with.

Everything that waits on purpose (backoff, pacing, the typing refresh, the
credentials poll, the lease renewal) goes through these, so tests inject a
:class:`~polpo.clock.FakeClock` and a sleep that never waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from polpo.clock import SYSTEM_CLOCK, Clock

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Timing:
    """Where time comes from: ``clock.now()``, ``sleep(seconds)``, ``rng()`` in [0, 1)."""

    clock: Clock = SYSTEM_CLOCK
    sleep: Sleep = asyncio.sleep
    rng: Callable[[], float] = field(default=random.random)


def seconds_text(delay: float) -> str:
    """``0.5``, ``1.4``, ``12``: a delay as a person reads it."""
    return f"{delay:.0f}" if delay >= 10 else f"{delay:.1f}".rstrip("0").rstrip(".")
