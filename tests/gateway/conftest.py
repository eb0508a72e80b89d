"""A real project (config + SQLite file) with a WhatsApp-type gateway over a MemoryChannel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.testing import MemoryChannel, RecordingResponder

OWNER = "39123456789"
OWNER_PEER = f"whatsapp:{OWNER}"
STRANGER = "4915112345678"

OpenProject = Callable[..., Awaitable[Polpo]]


def gateway_config(**gateway: Any) -> dict[str, Any]:
    gw: dict[str, Any] = {
        "enableInbound": True,
        "dmPolicy": "allowlist",
        "allowFrom": [f"+{OWNER}"],
    }
    gw.update(gateway)
    return {
        "project": "demo",
        "agents": [{"name": "coder", "role": "Senior engineer"}],
        "settings": {
            "approvalGates": [
                {
                    "name": "review",
                    "hook": "task:complete",
                    "agents": ["coder"],
                    "timeoutMinutes": 60,
                    "onTimeout": "reject",
                }
            ],
            "notifications": {
                "channels": {
                    "wa": {"type": "whatsapp", "gateway": gw},
                    "tg": {
                        "type": "telegram",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "pairing",
                            "allowFrom": ["42"],
                        },
                    },
                }
            },
        },
    }


def write_project(root: Path, config: dict[str, Any]) -> Path:
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POLPO_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def open_project(tmp_path: Path, clock: FakeClock) -> AsyncIterator[OpenProject]:
    """``await open_project(dmPolicy="pairing", …)``: the project with those gateway fields.

    Calling it again with ``reopen=True`` opens the same database afresh (a restart).
    """
    opened: list[Polpo] = []
    root = tmp_path / "proj"

    async def _open(reopen: bool = False, **gateway: Any) -> Polpo:
        path = root / ".polpo" / "polpo.json"
        if not reopen or not path.exists():
            write_project(root, gateway_config(**gateway))
        app = await Polpo.open(load_config(path), clock=clock)
        opened.append(app)
        return app

    yield _open
    for app in opened:
        await app.close()


@pytest.fixture
def whatsapp(clock: FakeClock) -> MemoryChannel:
    return MemoryChannel("whatsapp", clock=clock)


@pytest.fixture
def telegram(clock: FakeClock) -> MemoryChannel:
    return MemoryChannel("telegram", clock=clock)


async def inbox_rows(app: Polpo) -> list[Any]:
    import sqlalchemy as sa

    from polpo.store.tables import inbox

    async with app.store.read() as conn:
        return list((await conn.execute(sa.select(inbox).order_by(inbox.c.id))).all())


async def outbox_rows(app: Polpo) -> list[Any]:
    import sqlalchemy as sa

    from polpo.store.tables import outbox

    async with app.store.read() as conn:
        return list((await conn.execute(sa.select(outbox).order_by(outbox.c.id))).all())


@pytest.fixture
def responder() -> RecordingResponder:
    return RecordingResponder()
