"""Inbound text is cut to 64 KiB before it is stored; its sender is told it was too long."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from polpo.channels.base import InboundMessage
from polpo.gateway.inbox import MAX_NAME_CHARS, MAX_TEXT_BYTES, sanitize
from polpo.llm.base import ChatReply
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, OpenProject, inbox_rows


def _msg(text: str, **fields: Any) -> InboundMessage:
    return InboundMessage("whatsapp", OWNER, "chat", "id-1", text, 1.0, **fields)


def test_a_text_up_to_64_kib_is_kept_whole() -> None:
    for text in ("a" * MAX_TEXT_BYTES, "😀" * (MAX_TEXT_BYTES // 4), "é" * (MAX_TEXT_BYTES // 2)):
        kept = sanitize(_msg(text))
        assert (kept.text, kept.cut_from) == (text, None)


def test_a_longer_text_is_cut_on_a_character_boundary_and_says_how_long_it_was() -> None:
    cut = sanitize(_msg("a" * (MAX_TEXT_BYTES + 1)))
    assert (cut.text, cut.cut_from) == ("a" * MAX_TEXT_BYTES, MAX_TEXT_BYTES + 1)
    # 1 + 4 × 16,384 bytes: the last emoji does not fit whole, so it goes entirely
    cut = sanitize(_msg("a" + "😀" * (MAX_TEXT_BYTES // 4)))
    assert cut.text == "a" + "😀" * (MAX_TEXT_BYTES // 4 - 1)
    assert cut.cut_from == 1 + MAX_TEXT_BYTES // 4
    assert len(cut.text.encode()) == MAX_TEXT_BYTES - 3


def test_a_display_name_is_kept_short() -> None:
    assert sanitize(_msg("hi", display_name="M" * 10_000)).display_name == "M" * MAX_NAME_CHARS


class HeldResponder(RecordingResponder):
    """Never answers: the process "dies" mid-turn, the next message still queued."""

    async def respond(
        self, *, peer_id: str, text: str, history: list[Any], pictures: Sequence[Any] = ()
    ) -> ChatReply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_cut_message_resumed_after_a_restart_is_still_refused_with_its_length(
    open_project: OpenProject, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    long = "word " * 20_000  # 100,000 characters
    async with running_gateway(app, whatsapp, responder=HeldResponder()) as gw:
        await whatsapp.receive(OWNER, "first")
        await whatsapp.receive(OWNER, long)  # queued behind the first
        await gw.gateway.stop(grace=0)
    rows = await inbox_rows(app)
    assert [r.status for r in rows] == ["received", "received"]
    assert len(rows[1].text) == MAX_TEXT_BYTES and "text" not in rows[1].payload
    responder = RecordingResponder()
    channel = MemoryChannel("whatsapp")
    async with running_gateway(app, channel, responder=responder) as gw:
        await gw.settle()
        second = [s.text for s in channel.sent][1]
        assert "too long" in second and "100,000 characters" in second
        # and the next message is a message like any other
        assert await exchange(gw, channel, OWNER, "short") == ["echo: short"]
    assert [c.text for c in responder.calls] == ["first", "short"]
