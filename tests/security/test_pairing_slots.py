"""Strangers cannot hold the pairing slots (SPEC §3).

The attack: under ``dmPolicy: pairing`` at most 3 codes are pending per
channel. Three numbers that ping once a minute used to hold all 3 slots for
as long as they liked: a code expires after 60 minutes, and their next ping
got a fresh one at once. Here they ping every minute for two and a half hours against
a real SQLite file with an injected clock, while a fourth person tries to get
in. A repeat message never extends a pending code; after a code expires its
peer waits 24 hours for a new one; the fourth is told once to try later and
gets a code as soon as a slot frees; admins see the pending requests in
``/status``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.store.tables import allowlist, pairing_requests
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

ADMIN = "39123456789"
PINGERS = ["4915100000001", "4915100000002", "4915100000003"]
NEWCOMER = "4915100000009"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Polpo]:
    config: dict[str, Any] = {
        "project": "slots",
        "settings": {
            "runner": {"enabled": False},
            "notifications": {
                "channels": {
                    "wa": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "pairing",
                            "allowFrom": [f"+{ADMIN}"],
                            "rateLimitPerMinute": 0,
                        },
                    }
                }
            },
        },
    }
    path = tmp_path / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    opened = await Polpo.open(load_config(path), clock=FakeClock())
    yield opened
    await opened.close()


async def _requests(app: Polpo) -> list[Any]:
    async with app.store.read() as conn:
        query = sa.select(pairing_requests).order_by(pairing_requests.c.created_at)
        return list((await conn.execute(query)).all())


async def test_three_pingers_cannot_hold_the_slots_for_hours(app: Polpo) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    start = clock.now()
    wa = MemoryChannel("whatsapp", clock=clock)
    told_later: list[str] = []
    newcomer_code: str | None = None
    async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
        for minute in range(150):
            for n, pinger in enumerate(PINGERS):
                await exchange(gw, wa, pinger, f"ping {minute}", display_name=f"Pinger {n}")
            if newcomer_code is None and minute % 5 == 0:
                for reply in await exchange(gw, wa, NEWCOMER, "hello, may I?"):
                    if "/pair " in reply:
                        newcomer_code = reply.split("/pair ")[1][:8]
                    else:
                        told_later.append(reply)
            clock.advance(60)

    rows = await _requests(app)
    pinger_rows = [r for r in rows if r.peer_id != f"whatsapp:{NEWCOMER}"]
    # one code each in 150 minutes; pinging never moved an expiry
    assert sorted(r.peer_id for r in pinger_rows) == sorted(f"whatsapp:{p}" for p in PINGERS)
    assert all(r.expires_at == r.created_at + 3600 for r in rows)
    # the newcomer was told once to come back, and got a code once a slot freed
    assert len(told_later) == 1 and "try again later" in told_later[0]
    assert newcomer_code is not None
    (mine,) = [r for r in rows if r.peer_id == f"whatsapp:{NEWCOMER}"]
    assert mine.code == newcomer_code
    assert mine.created_at - start <= 65 * 60


async def test_a_pinger_gets_a_new_code_only_24_hours_after_the_last_expired(app: Polpo) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    wa = MemoryChannel("whatsapp", clock=clock)
    async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
        [first] = await exchange(gw, wa, PINGERS[0], "hi")
        (row,) = await _requests(app)
        clock.set(row.expires_at + 24 * 3600 - 1)
        assert await exchange(gw, wa, PINGERS[0], "hi again") == []
        clock.advance(1)
        [second] = await exchange(gw, wa, PINGERS[0], "hi again")
    codes = [r.code for r in await _requests(app)]
    assert len(codes) == 2 and codes[0] in first and codes[1] in second


async def test_admins_see_pending_requests_in_status_and_others_do_not(app: Polpo) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    wa = MemoryChannel("whatsapp", clock=clock)
    async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
        await exchange(gw, wa, PINGERS[0], "hi", display_name="Eve")
        (row,) = await _requests(app)
        [status] = await exchange(gw, wa, ADMIN, "/status")
        assert "Pairing requests pending: 1" in status
        assert row.code in status and "Eve" in status
        # an admitted peer who is not an admin sees /status without them
        async with app.store.write() as conn:
            await conn.execute(
                allowlist.insert().values(
                    peer_id=f"whatsapp:{PINGERS[1]}",
                    added_by="cli",
                    added_at=clock.now(),
                    source="cli",
                )
            )
        [theirs] = await exchange(gw, wa, PINGERS[1], "/status")
        assert "Pairing" not in theirs and row.code not in theirs
