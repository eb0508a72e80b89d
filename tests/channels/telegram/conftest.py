"""Fixtures for the Telegram channel: a fake Bot API server, a recording
listener, and a sleep that never waits.

(No ``__init__.py`` here on purpose: it would make this folder a package
named ``telegram`` and hide python-telegram-bot.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import TOKEN, Changes, FakeBotApi

from polpo.channels.base import ChannelStatus, InboundMessage
from polpo.channels.telegram import TelegramChannel
from polpo.clock import FakeClock

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # PTB 22 warns about its own RetryAfter (the channel reads both forms).
    quiet = pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:DeprecationWarning")
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(quiet)


class RecordingListener:
    """The gateway as the channel sees it: stores (records) messages, or fails."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.messages: list[InboundMessage] = []
        self.statuses: list[ChannelStatus] = []
        #: raise this on the next on_message calls (one per entry)
        self.failures: list[Exception] = []
        #: when set, on_message waits for it before storing (the messages ``hold_when`` picks)
        self.hold: asyncio.Event | None = None
        self.hold_when: Callable[[InboundMessage], bool] = lambda m: True
        self.holding = 0

    async def on_message(self, message: InboundMessage) -> None:
        if self.failures:
            self.changes.notify()
            raise self.failures.pop(0)
        if self.hold is not None and self.hold_when(message):
            self.holding += 1
            self.changes.notify()
            await self.hold.wait()
        self.messages.append(message)
        self.changes.notify()

    async def on_status(self, status: ChannelStatus) -> None:
        self.statuses.append(status)
        self.changes.notify()

    def states(self) -> list[str]:
        return [s.state for s in self.statuses]


class ManualSleep:
    """Stands in for ``asyncio.sleep``: records each wait and returns at once,
    or, when ``gated``, holds every sleeper until :meth:`release`."""

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
        else:
            await asyncio.sleep(0)

    def release(self) -> None:
        """Wake everyone sleeping now; later sleepers wait for the next release."""
        gate, self._gate = self._gate, asyncio.Event()
        gate.set()

    def open(self) -> None:
        self.gated = False
        self.release()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
async def api(changes: Changes) -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(changes)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def listener(changes: Changes) -> RecordingListener:
    return RecordingListener(changes)


@pytest.fixture
def sleep(changes: Changes) -> ManualSleep:
    return ManualSleep(changes)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_channel(
    api: FakeBotApi, sleep: ManualSleep, clock: FakeClock
) -> AsyncIterator[Callable[..., TelegramChannel]]:
    made: list[TelegramChannel] = []

    def make(**options: Any) -> TelegramChannel:
        options.setdefault("api_base_url", api.base_url)
        options.setdefault("sleep", sleep)
        options.setdefault("clock", clock)
        options.setdefault("rng", lambda: 1.0)
        options.setdefault("poll_timeout", 5)
        options.setdefault("request_timeout", 5.0)
        token = options.pop("token", TOKEN)
        channel = TelegramChannel(token, **options)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.stop()
