"""Strangers cannot grow Polpo's storage (SPEC §3, §12).

The attack, reproduced on an earlier main: one **unlisted** sender, under
``dmPolicy: allowlist``, sent 1,000 messages of 65,536 emoji (256 KiB each);
Polpo made no model call, yet stored each text twice (``text`` and
``payload``), with the sender's id and chat, and the database grew by 1 GB.

Here the same 1,000 messages go through the real gateway onto a real SQLite
file, with the real chat agent (pydantic-ai, a ``FunctionModel`` counting
calls) answering the owner in the middle of the flood; the file is measured
on disk. Then the same from 1,000 numbers within one minute (the flood
guard), a stranger asking for a pairing code mid-flood, and an admitted
peer's text over 64 KiB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.core.models import Event
from polpo.gateway.flood import STRANGER_ROWS_PER_MINUTE
from polpo.llm.chat import ChatAgent
from polpo.store.tables import inbox, pairing_requests, peers
from polpo.testing import MemoryChannel, exchange, running_gateway

OWNER = "39123456789"
STRANGER = "4915112345678"
MARKER = "STRANGER-TEXT-MARKER"
#: what the attacker sent, 1,000 times: 65,536 emoji, 256 KiB of UTF-8
HUGE = MARKER + "😀" * 65_536
#: the most the whole flood of 1,000 may add to the database file
FLOOD_BYTES = 300_000


@dataclass
class Model:
    """A scripted model that counts its calls and what it was asked."""

    prompts: list[str] = field(default_factory=list)

    def play(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1].parts[-1]
        prompt = last.content if isinstance(last, UserPromptPart) else ""
        self.prompts.append(str(prompt))
        return ModelResponse(parts=[TextPart(f"model heard: {prompt}")])


Opener = Callable[..., Any]


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str], Path]:
    def write(policy: str) -> Path:
        config: dict[str, Any] = {
            "project": "flooded",
            "settings": {
                "runner": {"enabled": False},
                "notifications": {
                    "channels": {
                        "wa": {
                            "type": "whatsapp",
                            "gateway": {
                                "enableInbound": True,
                                "dmPolicy": policy,
                                "allowFrom": [f"+{OWNER}"],
                            },
                        }
                    }
                },
            },
        }
        path = tmp_path / ".polpo" / "polpo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config), encoding="utf-8")
        return path

    return write


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    yield FakeClock()


def _db_size(config_path: Path) -> int:
    db = config_path.parent / "polpo.db"
    size = db.stat().st_size
    for extra in ("-wal", "-journal"):
        side = db.with_name(db.name + extra)
        if side.exists():
            size += side.stat().st_size
    return size


def _db_bytes(config_path: Path) -> bytes:
    db = config_path.parent / "polpo.db"
    data = db.read_bytes()
    for extra in ("-wal", "-journal"):
        side = db.with_name(db.name + extra)
        if side.exists():
            data += side.read_bytes()
    return data


async def _stranger_rows(app: Polpo) -> list[Any]:
    async with app.store.read() as conn:
        query = sa.select(inbox).where(inbox.c.status != "done").order_by(inbox.c.id)
        return list((await conn.execute(query)).all())


async def _stored_bytes(app: Polpo) -> int:
    """What the inbox holds of senders and texts, all rows together (either engine)."""
    async with app.store.read() as conn:
        rows = (
            await conn.execute(
                sa.select(inbox.c.peer_id, inbox.c.chat_id, inbox.c.text, inbox.c.payload)
            )
        ).all()
    return sum(
        len(r.peer_id) + len(r.chat_id) + len(r.text.encode()) + len(json.dumps(r.payload or {}))
        for r in rows
    )


@pytest.mark.sqlite_only(reason="measures the SQLite database file on disk")
async def test_a_thousand_huge_messages_from_one_unlisted_sender_leave_only_dedupe_rows(
    project: Callable[[str], Path], clock: FakeClock
) -> None:
    path = project("allowlist")
    model = Model()
    app = await Polpo.open(load_config(path), clock=clock)
    wa = MemoryChannel("whatsapp", clock=clock)
    async with running_gateway(app, wa, responder=ChatAgent(app, FunctionModel(model.play))) as gw:
        assert await exchange(gw, wa, OWNER, "hi") == ["model heard: hi"]
    await app.close()
    before = _db_size(path)

    app = await Polpo.open(load_config(path), clock=clock)
    wa = MemoryChannel("whatsapp", clock=clock)
    async with running_gateway(app, wa, responder=ChatAgent(app, FunctionModel(model.play))) as gw:
        for n in range(1_000):
            await wa.receive(STRANGER, HUGE, display_name="Mallory")
            # 40 a minute: under the flood guard, every one is recorded (for dedupe)
            clock.advance(1.5)
            if n == 500:  # the owner is heard in the middle of it
                assert await exchange(gw, wa, OWNER, "still there?") == [
                    "model heard: still there?"
                ]
        await gw.settle()
        assert [s.chat_id for s in wa.sent] == [f"{OWNER}@s.whatsapp.net"]  # silence
        rows = await _stranger_rows(app)
        async with app.store.read() as conn:
            stranger_peer = (
                await conn.execute(sa.select(peers).where(peers.c.id == f"whatsapp:{STRANGER}"))
            ).first()
    await app.close()

    growth = _db_size(path) - before
    assert growth <= FLOOD_BYTES, f"the database grew by {growth:,} bytes"
    assert model.prompts == ["hi", "still there?"]  # 0 model calls for the stranger
    # every message deduped by its row, with nothing else in it
    assert len(rows) == 1_000
    assert {(r.status, r.outcome, r.peer_id, r.chat_id, r.text) for r in rows} == {
        ("ignored", "not allowed", "", "", "")
    }
    assert all(r.payload in ({}, None) for r in rows)
    assert stranger_peer is None  # not even a peer row
    data = _db_bytes(path)
    assert MARKER.encode() not in data and ("😀" * 8).encode() not in data
    assert STRANGER.encode() not in data and b"Mallory" not in data


async def test_a_thousand_numbers_at_once_meet_the_flood_guard(
    project: Callable[[str], Path], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = project("allowlist")
    model = Model()
    app = await Polpo.open(load_config(path), clock=clock)
    try:
        wa = MemoryChannel("whatsapp", clock=clock)
        agent = ChatAgent(app, FunctionModel(model.play))
        caplog.set_level(logging.WARNING, logger="polpo.gateway.flood")
        async with running_gateway(app, wa, responder=agent) as gw:
            for n in range(1_000):  # 1,000 numbers within one minute
                await wa.receive(f"4916{n:09d}", HUGE)
                clock.advance(0.05)
                if n == 700:  # the owner is still heard, past the guard's limit
                    assert await exchange(gw, wa, OWNER, "still there?") == [
                        "model heard: still there?"
                    ]
            await gw.settle()
            rows = await _stranger_rows(app)
            assert len(rows) == STRANGER_ROWS_PER_MINUTE  # the rest dropped unstored
            assert gw.gateway.stats["dropped:flood"] == 1_000 - STRANGER_ROWS_PER_MINUTE
            assert gw.gateway.stats["ignored:not allowed"] == STRANGER_ROWS_PER_MINUTE
            floods = [r for r in caplog.records if "flood" in r.getMessage()]
            assert len(floods) == 1  # logged once a minute, not once a message
            # a sliding minute: once the first rows are a minute old, strangers are
            # recorded again (and the next warning waits for its minute)
            clock.advance(60)
            await wa.receive("4917000000001", "spam")
            await gw.settle()
            assert len(await _stranger_rows(app)) == STRANGER_ROWS_PER_MINUTE + 1
        assert model.prompts == ["still there?"]
        assert await _stored_bytes(app) < 1_000  # the owner's row; strangers add nothing
    finally:
        await app.close()


async def test_a_stranger_still_gets_a_pairing_code_and_the_admins_their_name(
    project: Callable[[str], Path], clock: FakeClock
) -> None:
    path = project("pairing")
    model = Model()
    app = await Polpo.open(load_config(path), clock=clock)
    alerts: list[Event] = []

    async def seen(e: Event) -> None:
        alerts.append(e)

    app.bus.subscribe("peer:pairing_requested", seen)
    try:
        wa = MemoryChannel("whatsapp", clock=clock)
        agent = ChatAgent(app, FunctionModel(model.play))
        async with running_gateway(app, wa, responder=agent) as gw:
            replies: list[str] = []
            for _ in range(50):
                replies += await exchange(gw, wa, STRANGER, HUGE, display_name="Mario")
                clock.advance(1)
            [code_reply] = replies  # one code, then silence
            [request] = await app.peers.list_pairing("pending")
            assert request.code in code_reply and "Mario" in code_reply
            assert [e.payload for e in alerts] == [
                {
                    "peerId": f"whatsapp:{STRANGER}",
                    "displayName": "Mario",
                    "code": request.code,
                    "channel": "whatsapp",
                }
            ]
            # nothing of what the stranger wrote is kept; the pairing request names them
            rows = await _stranger_rows(app)
            assert len(rows) == 49 and {(r.peer_id, r.text) for r in rows} == {("", "")}
            async with app.store.read() as conn:
                [pending] = (await conn.execute(sa.select(pairing_requests))).all()
            assert (pending.peer_id, pending.display_name) == (f"whatsapp:{STRANGER}", "Mario")
            assert f"whatsapp:{STRANGER}" not in [p.id for p in await app.peers.list()]
            await app.peers.approve_pairing(request.code, by="cli")
            await gw.settle()  # "you're in"
            # let in: a known peer now, under the name the request kept
            [known] = [p for p in await app.peers.list() if p.id == f"whatsapp:{STRANGER}"]
            assert (known.display_name, known.allowed) == ("Mario", True)
            # admitted now: heard in full
            assert await exchange(gw, wa, STRANGER, "thanks!") == ["model heard: thanks!"]
        assert model.prompts == ["thanks!"]
    finally:
        await app.close()


async def test_an_admitted_peers_text_over_64_kib_is_refused_politely_and_stored_once(
    project: Callable[[str], Path], clock: FakeClock
) -> None:
    path = project("allowlist")
    model = Model()
    app = await Polpo.open(load_config(path), clock=clock)
    try:
        wa = MemoryChannel("whatsapp", clock=clock)
        agent = ChatAgent(app, FunctionModel(model.play))
        async with running_gateway(app, wa, responder=agent) as gw:
            [reply] = await exchange(gw, wa, OWNER, "é" * 100_000)
            assert "too long" in reply and "100,000 characters" in reply
            # a command is not run on a cut text either
            [refused] = await exchange(gw, wa, OWNER, "/status " + "x" * 70_000)
            assert "too long" in refused and "70,008 characters" in refused
            # up to the limit it is a message like any other (stored once, in `text`)
            assert await exchange(gw, wa, OWNER, "hello") == ["model heard: hello"]
        assert model.prompts == ["hello"]
        async with app.store.read() as conn:
            rows = (await conn.execute(sa.select(inbox).order_by(inbox.c.id))).all()
        assert [len(r.text.encode()) <= 64 * 1024 for r in rows] == [True, True, True]
        assert rows[0].text == "é" * (32 * 1024)  # cut on a character boundary
        assert [r.text for r in rows][2] == "hello"
        assert all("text" not in (r.payload or {}) for r in rows)  # stored once, not twice
    finally:
        await app.close()
