"""Fixtures for the WhatsApp channel tests (helpers live in ``wa_support.py``;
no ``__init__.py`` here, like the Telegram tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wa_support import (
    Changes,
    ManualSleep,
    RecordingListener,
    fake_worker,
    make_credentials,
)

from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.process import WorkerOptions
from polpo.channels.whatsapp.timing import Timing
from polpo.clock import Clock, FakeClock


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def listener(changes: Changes) -> RecordingListener:
    return RecordingListener(changes)


@pytest.fixture
def auth_dir(tmp_path: Path) -> Path:
    d = tmp_path / ".polpo" / "whatsapp"
    make_credentials(d)
    return d


@pytest.fixture
async def make_channel(
    auth_dir: Path, changes: Changes
) -> AsyncIterator[Callable[..., WhatsAppChannel]]:
    made: list[WhatsAppChannel] = []

    def factory(
        scenario: str,
        *,
        sleep: Callable[[float], Any] | None = None,
        rng: Callable[[], float] | None = None,
        clock: Clock | None = None,
        worker: WorkerOptions | None = None,
        **options: Any,
    ) -> WhatsAppChannel:
        ch = WhatsAppChannel(
            auth_dir,
            worker=fake_worker(scenario, worker),
            timing=Timing(
                clock=clock or FakeClock(),
                sleep=sleep or ManualSleep(changes),
                rng=rng or (lambda: 1.0),
            ),
            **options,
        )
        made.append(ch)
        return ch

    yield factory
    for ch in made:
        await ch.stop()
