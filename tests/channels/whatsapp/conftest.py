"""Fixtures for the WhatsApp channel tests (helpers live in ``wa_support.py``;
no ``__init__.py`` here, like the Telegram tests)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wa_support import FAKE_WORKER, Changes, ManualSleep, RecordingListener, make_credentials

from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.clock import FakeClock


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

    def factory(scenario: str, **options: Any) -> WhatsAppChannel:
        options.setdefault("sleep", ManualSleep(changes))
        options.setdefault("rng", lambda: 1.0)
        options.setdefault("clock", FakeClock())
        options.setdefault("stop_timeout", 5.0)
        ch = WhatsAppChannel(
            auth_dir, worker_command=[sys.executable, str(FAKE_WORKER), scenario], **options
        )
        made.append(ch)
        return ch

    yield factory
    for ch in made:
        await ch.stop()
