"""Replies exactly once across a crash mid-send (SPEC §12).

A process can die after the network took a part but before the outbox
recorded it. Played here in process: the channel takes the part, then the
"process" hangs there and is stopped (its dispatcher cancelled, nothing more
recorded), and a new gateway opens the same SQLite file. A channel that
mints ids (WhatsApp) gets the part again with the same id, so a recipient
that drops repeated ids sees every part once; a channel whose network picks
ids (Telegram) repeats only that one part.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.channels.base import OutboundMessage, SendResult
from polpo.clock import FakeClock
from polpo.testing import MemoryChannel, RecordingResponder, running_gateway

from .conftest import OWNER, OpenProject

#: three paragraphs that cannot share a 60-character part
REPLY = (
    "First paragraph of the answer, long enough on its own.\n\n"
    "Second paragraph of the answer, long enough on its own.\n\n"
    "Third paragraph of the answer, long enough on its own."
)


class DyingChannel(MemoryChannel):
    """Sends onto a shared ``network`` log; the ``die_at``-th send never returns."""

    def __init__(self, network: list[tuple[str, str, str]], die_at: int, **kw: Any) -> None:
        super().__init__("whatsapp", max_text_length=60, **kw)
        self.network = network
        self.die_at = die_at

    async def send(self, message: OutboundMessage) -> SendResult:
        result = await super().send(message)
        assert result.message_id is not None
        self.network.append((message.chat_id, result.message_id, message.text))
        if len(self.network) == self.die_at:
            await asyncio.Event().wait()  # the process dies with the part on the wire
        return result


@pytest.mark.parametrize("mint_ids", [True, False], ids=["assigned-ids", "network-ids"])
async def test_a_crash_mid_reply_repeats_at_most_the_part_in_flight(
    open_project: OpenProject, clock: FakeClock, mint_ids: bool
) -> None:
    network: list[tuple[str, str, str]] = []
    app: Polpo = await open_project()
    responder = RecordingResponder(answer=lambda text: REPLY)
    dying = DyingChannel(network, die_at=2, clock=clock, mint_ids=mint_ids)
    async with running_gateway(app, dying, responder=responder):
        await dying.receive(OWNER, "tell me three things")
        await dying.wait_sent(2)
        assert len(network) == 2
    await app.close()

    app = await open_project(reopen=True)
    again = DyingChannel(network, die_at=0, clock=clock, mint_ids=mint_ids)
    async with running_gateway(app, again, responder=responder) as gw:
        await gw.settle()
    texts = [text for _chat, _mid, text in network]
    assert sorted(set(texts)) == sorted(REPLY.split("\n\n"))
    assert len(responder.calls) == 1  # the turn ran once: one reply, never two
    if mint_ids:
        # the second part went out twice with the same id: the recipient keeps one
        assert len(network) == 4 and network[1] == network[2]
        assert len({mid for _c, mid, _t in network}) == 3
    else:
        # the network picked a new id: only that part repeats, nothing else
        assert len(network) == 4 and texts.count(texts[1]) == 2
