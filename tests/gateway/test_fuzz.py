"""1,000 random inbound messages from unauthorised senders: the pipeline never crashes,
and nothing they send reaches the model or a command (SPEC §12)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polpo.app import Polpo
from polpo.channels.base import InboundMessage
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.gateway import commands
from polpo.gateway.component import GatewayComponent
from polpo.store.tables import inbox, outbox
from polpo.testing import MemoryChannel, RecordingResponder

from .conftest import OWNER, gateway_config, write_project

ANY_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x1F), max_size=50),
    st.sampled_from(
        [
            "/status",
            "/help",
            "/approve",
            "/pair ABCDEFGH",
            "/new",
            "  /start",
            "/x@bot",
            "",
            "\x00",
            "👍",
        ]
    ),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "é", "🐙", "/", "\n"]),
        st.integers(50_000, 100_000),
    ),
)
STRANGER_PEER = st.one_of(
    st.from_regex(r"4[0-9]{6,13}", fullmatch=True),
    st.builds(lambda n: f"lid:{n}", st.integers(1, 10**20)),
    st.text(max_size=40),
    st.sampled_from(["", " ", "+", "39", "telegram:42", "whatsapp:", "@s.whatsapp.net", "42"]),
)
ODD_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1_800_000_000.0))


def messages() -> st.SearchStrategy[InboundMessage]:
    return st.builds(
        InboundMessage,
        channel=st.sampled_from(["whatsapp", "telegram", "memory", "sms", ""]),
        peer=STRANGER_PEER,
        chat_id=st.text(max_size=40),
        message_id=st.one_of(st.text(max_size=30), st.uuids().map(str)),
        text=ANY_TEXT,
        timestamp=ODD_FLOAT,
        display_name=st.one_of(st.none(), st.text(max_size=80)),
        is_group=st.booleans(),
        is_from_me=st.booleans(),
        is_self_chat=st.just(False),  # the self-chat is the owner's console: authorised by design
        quoted_id=st.one_of(st.none(), st.text(max_size=10)),
        kind=st.sampled_from(["text", "edit", "reaction", "media", "unsupported", "sticker"]),
        reaction=st.one_of(st.none(), st.sampled_from(["👍", "👎", "", "x"])),
        target_id=st.one_of(st.none(), st.text(max_size=10)),
        lid=st.one_of(st.none(), st.text(max_size=20), st.just("123@lid")),
        offline=st.booleans(),
    )


def _authorised(m: InboundMessage) -> bool:
    digits = "".join(c for c in m.peer if c.isdigit())
    return m.peer.strip() in (OWNER, "42") or digits in (OWNER, "42")


def test_random_messages_from_strangers_never_crash_or_reach_the_model(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    responder = RecordingResponder()
    dispatched: list[str] = []
    real_dispatch = commands.dispatch

    async def spy(ctx: commands.CommandContext, text: str) -> commands.CommandReply:
        dispatched.append(text)
        return await real_dispatch(ctx, text)

    commands.dispatch = spy  # type: ignore[assignment]
    path = write_project(tmp_path / "proj", gateway_config(rateLimitPerMinute=0))
    clock = FakeClock()

    async def setup() -> tuple[Polpo, GatewayComponent, dict[str, MemoryChannel]]:
        app = await Polpo.open(load_config(path), clock=clock)
        chans = {n: MemoryChannel(n, clock=clock) for n in ("whatsapp", "telegram", "memory")}
        gw = GatewayComponent(app, chans.values(), responder=responder)
        await gw.start()
        return app, gw, chans

    app, gw, chans = loop.run_until_complete(setup())
    seen = {"n": 0}

    async def one(m: InboundMessage) -> None:
        await gw.gateway.on_message(m)
        await gw.settle()

    @settings(
        max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(messages())
    def check(m: InboundMessage) -> None:
        if _authorised(m):
            return
        seen["n"] += 1
        loop.run_until_complete(one(m))
        assert responder.calls == []
        assert dispatched == []
        for ch in chans.values():
            assert ch.read == []
            for s in ch.sent:  # a stranger may only get a pairing code, or "try later"
                assert "pairing code" in s.text or "try again later" in s.text

    try:
        check()
        rows: list[Any] = loop.run_until_complete(_rows(app))
        assert seen["n"] > 500
        assert all(status in ("ignored", "done") for status, _ in rows[0])
        assert all(r == "telegram" for r in rows[1])  # only the pairing channel ever replied
        assert not math.isnan(clock.now())
    finally:
        commands.dispatch = real_dispatch  # type: ignore[assignment]
        loop.run_until_complete(gw.stop())
        loop.run_until_complete(app.close())
        loop.close()


async def _rows(app: Polpo) -> tuple[list[Any], list[str]]:
    async with app.store.read() as conn:
        statuses = (await conn.execute(sa.select(inbox.c.status, inbox.c.outcome))).all()
        channels = [r[0] for r in (await conn.execute(sa.select(outbox.c.channel))).all()]
    return [tuple(r) for r in statuses], channels


def test_random_text_from_the_owner_is_always_answered_and_never_fails(tmp_path: Path) -> None:
    """Whatever the owner sends (control characters, odd Unicode, 100k characters,
    malformed commands), each message gets exactly one reply and no row fails."""
    loop = asyncio.new_event_loop()
    responder = RecordingResponder(answer=lambda text: f"got {len(text)}")
    path = write_project(tmp_path / "proj", gateway_config(rateLimitPerMinute=0))
    clock = FakeClock()

    async def setup() -> tuple[Polpo, GatewayComponent, MemoryChannel]:
        app = await Polpo.open(load_config(path), clock=clock)
        channel = MemoryChannel("whatsapp", clock=clock)
        gw = GatewayComponent(app, [channel], responder=responder)
        await gw.start()
        return app, gw, channel

    app, gw, channel = loop.run_until_complete(setup())

    async def one(text: str) -> list[str]:
        before = len(channel.sent)
        await channel.receive(OWNER, text)
        await gw.settle()
        return [s.text for s in channel.sent[before:]]

    @settings(
        max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(ANY_TEXT.filter(lambda t: t.strip() != ""))
    def check(text: str) -> None:
        replies = loop.run_until_complete(one(text))
        assert len(replies) >= 1 and all(r.strip() for r in replies)

    try:
        check()
        rows = loop.run_until_complete(_rows(app))
        assert {status for status, _ in rows[0]} == {"done"}
    finally:
        loop.run_until_complete(gw.stop())
        loop.run_until_complete(app.close())
        loop.close()
