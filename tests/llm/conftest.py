"""A real project on disk (config + SQLite) for the chat agent's tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config

OpenProject = Callable[..., Awaitable[Polpo]]


def write_config(root: Path, **settings: Any) -> Path:
    config = {
        "project": "demo-app",
        "agents": [
            {"name": "coder", "role": "Senior engineer"},
            {"name": "writer", "role": "Technical writer"},
        ],
        "settings": settings,
    }
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own model settings must not leak into the tests."""
    for var in ("POLPO_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def open_project(tmp_path: Path) -> AsyncIterator[OpenProject]:
    opened: list[Polpo] = []

    async def _open(**settings: Any) -> Polpo:
        root = tmp_path / f"project{len(opened)}"
        path = write_config(root, **settings)
        app = await Polpo.open(load_config(path), clock=FakeClock())
        opened.append(app)
        return app

    yield _open
    for app in opened:
        await app.close()


@pytest.fixture
async def app(open_project: OpenProject) -> Polpo:
    return await open_project()
