"""Shared fixtures: a project directory with a real config and a real SQLite file."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import LoadedConfig, validate_config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave proof that the run reached its end (``make test`` checks it).

    A native library or a stray ``os._exit`` in a test's thread can end the
    process early with status 0; without this a silently truncated run would
    look green.
    """
    done = os.environ.get("POLPO_TEST_DONE_FILE")
    if done:
        Path(done).write_text(f"{exitstatus}\n", encoding="utf-8")


BASE_CONFIG: dict[str, Any] = {
    "project": "demo",
    "agents": [
        {"name": "coder", "role": "Senior engineer", "model": "test:model"},
        {"name": "writer", "role": "Docs", "model": "test:model"},
    ],
    "settings": {
        "approvalGates": [
            {
                "name": "plan",
                "hook": "task:start",
                "agents": ["writer"],
                "timeoutMinutes": 30,
                "onTimeout": "approve",
            },
            {
                "name": "review",
                "hook": "task:complete",
                "agents": ["coder"],
                "timeoutMinutes": 60,
                "onTimeout": "reject",
                "maxRevisions": 2,
            },
        ],
    },
}


def write_project(root: Path, config: dict[str, Any] | None = None) -> Path:
    """A project folder with ``.polpo/polpo.json``; returns the config path."""
    polpo_dir = root / ".polpo"
    polpo_dir.mkdir(parents=True, exist_ok=True)
    path = polpo_dir / "polpo.json"
    path.write_text(json.dumps(config or BASE_CONFIG, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root (the folder holding ``.polpo/``)."""
    root = tmp_path / "proj"
    write_project(root)
    return root


@pytest.fixture
def loaded(project: Path) -> LoadedConfig:
    path = project / ".polpo" / "polpo.json"
    return LoadedConfig(
        config=validate_config(json.loads(path.read_text())), path=path, root=project
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(loaded: LoadedConfig, clock: FakeClock) -> AsyncIterator[Polpo]:
    polpo = await Polpo.open(loaded, clock=clock)
    try:
        yield polpo
    finally:
        await polpo.close()
