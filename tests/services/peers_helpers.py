"""A project with WhatsApp (allowlist) and Telegram (pairing) gateways, and rows the
gateway would write (peers, pairing requests), for the peer service and command tests."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import LoadedConfig, validate_config
from polpo.store.tables import pairing_requests, peers
from tests.conftest import BASE_CONFIG, write_project

OWNER = "whatsapp:39123456789"
FRIEND = "whatsapp:39111222333"
TG_USER = "telegram:4242"


def gateway_config() -> dict[str, Any]:
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["settings"]["notifications"] = {
        "channels": {
            "whatsapp": {
                "type": "whatsapp",
                "gateway": {
                    "enableInbound": True,
                    "dmPolicy": "allowlist",
                    "allowFrom": ["+39 123 456 789"],
                },
            },
            "telegram": {
                "type": "telegram",
                "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
            },
        }
    }
    return cfg


def loaded_for(root: Path, config: dict[str, Any] | None = None) -> LoadedConfig:
    path = write_project(root, config or gateway_config())
    return LoadedConfig(config=validate_config(json.loads(path.read_text())), path=path, root=root)


@asynccontextmanager
async def open_project(root: Path, clock: FakeClock) -> AsyncIterator[Polpo]:
    app = await Polpo.open(loaded_for(root), clock=clock)
    try:
        yield app
    finally:
        await app.close()


async def seen(app: Polpo, peer_id: str, name: str | None = None, *, ago: float = 0) -> None:
    """What the gateway does when a peer writes: upsert its row."""
    now = app.clock.now() - ago
    async with app.store.write() as conn:
        exists = (await conn.execute(sa.select(peers.c.id).where(peers.c.id == peer_id))).first()
        if exists:
            await conn.execute(
                peers.update().where(peers.c.id == peer_id).values(last_seen=now, display_name=name)
            )
        else:
            await conn.execute(
                peers.insert().values(
                    id=peer_id,
                    channel=peer_id.split(":", 1)[0],
                    display_name=name,
                    first_seen=now,
                    last_seen=now,
                )
            )


async def pairing_request(
    app: Polpo, code: str, peer_id: str, name: str | None = None, *, chat_id: str | None = None
) -> None:
    """What the gateway writes for an unknown sender under ``dmPolicy: pairing``."""
    now = app.clock.now()
    async with app.store.write() as conn:
        await conn.execute(
            pairing_requests.insert().values(
                code=code,
                channel=peer_id.split(":", 1)[0],
                peer_id=peer_id,
                chat_id=chat_id or peer_id.split(":", 1)[1],
                display_name=name,
                status="pending",
                created_at=now,
                expires_at=now + 3600,
                last_sent_at=now,
            )
        )
