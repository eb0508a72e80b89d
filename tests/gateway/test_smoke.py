from __future__ import annotations

from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, OpenProject


async def test_owner_gets_help_and_chat(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        replies = await exchange(gw, whatsapp, OWNER, "/help")
        assert replies and "/status" in replies[0]
        replies = await exchange(gw, whatsapp, OWNER, "hello there")
        assert replies == ["echo: hello there"]
