"""Helpers for the WhatsApp channel tests: linked credentials on disk, a recording
listener, a sleep that never waits, the fake worker's log."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from polpo.channels.base import ChannelStatus, InboundMessage
from polpo.channels.whatsapp.process import WorkerOptions

HERE = Path(__file__).parent
FAKE_WORKER = HERE / "fake_worker.py"
OWN_PHONE = "39000000001"


def make_credentials(auth_dir: Path, phone: str = OWN_PHONE, lid: str | None = "900001") -> None:
    """A credentials database as whatsmeow leaves it after linking (the device row)."""
    auth_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(auth_dir / "neonize.db")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS whatsmeow_device (jid TEXT PRIMARY KEY, lid TEXT, "
        "push_name TEXT NOT NULL DEFAULT '', platform TEXT NOT NULL DEFAULT '')"
    )
    conn.execute(
        "INSERT INTO whatsmeow_device VALUES (?, ?, ?, ?)",
        (f"{phone}:7@s.whatsapp.net", f"{lid}:7@lid" if lid else None, "Owner", "SAFARI"),
    )
    conn.commit()
    conn.close()


class Changes:
    """Wakes waiters whenever the listener or the sleep saw something."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()

    def notify(self) -> None:
        async def _n() -> None:
            async with self._cond:
                self._cond.notify_all()

        asyncio.get_running_loop().create_task(_n())

    async def wait_for(self, predicate: Callable[[], bool], within: float = 15.0) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(predicate)

        await asyncio.wait_for(_wait(), within)


async def poll_until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Wait for a condition nothing notifies about (a file another process writes)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.01)


def poll_until_sync(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """The same, for tests that are not async (a subprocess writes the file)."""
    import time

    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {within} s")
        time.sleep(0.01)


class RecordingListener:
    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.messages: list[InboundMessage] = []
        self.statuses: list[ChannelStatus] = []
        self.fail_next = 0

    async def on_message(self, message: InboundMessage) -> None:
        if self.fail_next:
            self.fail_next -= 1
            self.changes.notify()
            raise RuntimeError("database is locked")
        self.messages.append(message)
        self.changes.notify()

    async def on_status(self, status: ChannelStatus) -> None:
        self.statuses.append(status)
        self.changes.notify()

    def states(self) -> list[str]:
        return [s.state for s in self.statuses]


class ManualSleep:
    """Records each wait and returns at once, or holds sleepers until :meth:`release`."""

    def __init__(self, changes: Changes, gated: bool = False) -> None:
        self.changes = changes
        self.delays: list[float] = []
        self.gated = gated
        self._gate = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.changes.notify()
        if self.gated:
            await self._gate.wait()
            self._gate.clear()
        else:
            await asyncio.sleep(0)

    def release(self) -> None:
        self._gate.set()


def fake_log(auth_dir: Path) -> list[dict[str, Any]]:
    path = auth_dir / "fake_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fake_worker(scenario: str, options: WorkerOptions | None = None) -> WorkerOptions:
    """``options`` running ``fake_worker.py SCENARIO`` (unless they name another command),
    stopped within 5 s unless they say otherwise."""
    base = options or WorkerOptions(stop_timeout=5.0)
    if base.command is not None:
        return base
    return replace(base, command=[sys.executable, str(FAKE_WORKER), scenario])
