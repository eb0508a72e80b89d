"""``GET /api/v1/channels/stream``: the rows at once, then on each change (a new QR
code, a linked account)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from polpo.app import Polpo
from polpo.channels.base import ChannelStatus
from polpo.clock import FakeClock
from polpo.host import Host
from tests.api.conftest import client_for, running_api


class SettableChannel:
    name = "whatsapp"

    def __init__(self, status: ChannelStatus) -> None:
        self.current = status

    def status(self) -> ChannelStatus:
        return self.current


def _qr(code: str, expires_at: float) -> ChannelStatus:
    return ChannelStatus(
        "whatsapp",
        "waiting_for_login",
        "scan this QR code",
        extra={"qr": code, "qrExpiresAt": expires_at, "login": "qr"},
    )


async def _next_rows(lines: Any) -> list[dict[str, Any]]:
    async for line in lines:
        if line.startswith("data: "):
            rows: list[dict[str, Any]] = json.loads(line[6:])
            return rows
    raise AssertionError("the stream ended")


async def test_rows_are_sent_again_when_the_qr_rotates_and_when_linked(
    app: Polpo, clock: FakeClock
) -> None:
    channel = SettableChannel(_qr("2@one", clock.now() + 60))
    host = Host(app)
    host.registry["channels"] = {"whatsapp": channel}
    async with (
        running_api(app, host=host) as server,
        client_for(server) as client,
        client.stream("GET", "/channels/stream") as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()
        first = (await asyncio.wait_for(_next_rows(lines), 5))[0]
        assert first["qr"] is True and first["qrExpiresIn"] == 60
        assert first["summary"].startswith("Link WhatsApp.")
        assert "2@one" not in json.dumps(first)  # the payload only as an image

        clock.advance(5)
        channel.current = _qr("2@two", clock.now() + 20)
        second = (await asyncio.wait_for(_next_rows(lines), 5))[0]
        assert second["qrVersion"] != first["qrVersion"]
        assert second["qrExpiresIn"] == 20

        channel.current = ChannelStatus("whatsapp", "connected", None, account="39123")
        third = (await asyncio.wait_for(_next_rows(lines), 5))[0]
        assert third["qr"] is False and third["summary"] == "Connected as +39123."
