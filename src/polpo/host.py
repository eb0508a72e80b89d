"""Everything ``polpo serve`` runs in one process, started and stopped in order.

Components are small: ``start()`` returns once running (background work in
its own tasks), ``stop()`` stops it. The HTTP API, the event tail, the
runner, the notifier, the gateway and each channel are components.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from polpo.app import Polpo

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a component's background task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def wake_or_timeout(wake: asyncio.Event, seconds: float) -> bool:
    """Wait until ``wake`` is set or ``seconds`` pass; True if it was set.

    Unlike ``asyncio.wait_for`` on Python 3.11, a cancel that arrives as the
    event is set is never swallowed, so a component's loop always stops.
    """
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    return True


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Host:
    app: Polpo
    components: list[Component] = field(default_factory=list)
    #: shared handles components may publish for each other (e.g. "gateway", "channels")
    registry: dict[str, Any] = field(default_factory=dict)
    _started: list[Component] = field(default_factory=list)

    def add(self, component: Component) -> None:
        self.components.append(component)

    async def start(self) -> None:
        for c in self.components:
            log.info("starting %s", c.name)
            await c.start()
            self._started.append(c)

    async def stop(self) -> None:
        for c in reversed(self._started):
            try:
                await asyncio.wait_for(c.stop(), timeout=15)
            except Exception:
                log.exception("stopping %s failed", c.name)
        self._started.clear()

    async def run_until(self, stopped: asyncio.Event) -> None:
        try:
            await self.start()
            await stopped.wait()
        finally:
            await self.stop()
