"""Auth (API key, CLI token), channel status (durable and live, with the QR hook), SSE
events, dashboard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from polpo.app import Polpo
from polpo.channels.base import ChannelStatus
from polpo.host import Host
from polpo.services.status import write_channel_state
from tests.api.conftest import client_for, running_api, sign_in


async def test_api_key_is_required_everywhere_but_health(app: Polpo) -> None:
    async with running_api(app, api_key="s3cret") as server:
        base = server.url + "/api/v1"
        async with httpx.AsyncClient(base_url=base, timeout=10) as anon:
            assert (await anon.get("/health")).status_code == 200
            for method, path in [
                ("GET", "/tasks"),
                ("POST", "/tasks"),
                ("GET", "/status"),
                ("GET", "/approvals"),
                ("GET", "/events"),
                ("GET", "/openapi.json"),
            ]:
                r = await anon.request(method, path, json={}, headers={"Origin": server.url})
                assert r.status_code == 401, path
                assert "Authorization: Bearer KEY" in r.json()["error"]
            r = await anon.get("/tasks", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
            r = await anon.get("/tasks", headers={"Authorization": "s3cret"})
            assert r.status_code == 401
        async with httpx.AsyncClient(
            base_url=base, timeout=10, headers={"Authorization": "Bearer s3cret"}
        ) as client:
            assert (await client.get("/tasks")).status_code == 200
            assert (await client.post("/tasks", json={"title": "ok"})).status_code == 201
        async with client_for(server) as cli:  # the CLI's token works beside the key
            assert (await cli.get("/tasks")).status_code == 200
        async with httpx.AsyncClient(timeout=10) as anon:
            page = await anon.get(server.url + "/")
            assert page.status_code == 401 and "polpo dashboard" in page.text


class FakeChannel:
    """Stands in for a live channel object the gateway would register."""

    name = "whatsapp"

    def __init__(self, status: ChannelStatus) -> None:
        self._status = status

    def status(self) -> ChannelStatus:
        return self._status


async def test_channels_merge_durable_and_live_state(app: Polpo) -> None:
    await write_channel_state(app.ctx, "telegram", "connected", account="@polpo_bot")
    await write_channel_state(app.ctx, "whatsapp", "disconnected", account="39123")
    host = Host(app)
    host.registry["channels"] = {
        "whatsapp": FakeChannel(
            ChannelStatus("whatsapp", "waiting_for_login", "scan the QR", extra={"qr": "2@abc,def"})
        )
    }
    async with (
        running_api(app, host=host) as server,
        client_for(server) as client,
    ):
        rows = {c["channel"]: c for c in (await client.get("/channels")).json()}
        assert rows["telegram"]["state"] == "connected" and rows["telegram"]["live"] is None
        wa = rows["whatsapp"]
        assert wa["state"] == "waiting_for_login"
        assert wa["live"]["detail"] == "scan the QR"
        assert wa["account"] == "39123" and wa["qr"] is True
        assert "qr" not in wa["live"]  # the payload is only served as an image
        qr = await client.get("/channels/whatsapp/qr.svg")
        assert qr.status_code == 200
        assert qr.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in qr.content
        missing = await client.get("/channels/telegram/qr.svg")
        assert missing.status_code == 404 and "no QR code" in missing.json()["error"]


async def _read_events(response: httpx.Response, n: int) -> AsyncIterator[dict[str, object]]:
    got = 0
    event: dict[str, object] = {}
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("event: "):
            event["type"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and "type" in event:
            yield event
            event = {}
            got += 1
            if got == n:
                return


async def test_events_stream_replays_then_follows(app: Polpo) -> None:
    first = await app.tasks.add("Before")
    async with (
        running_api(app) as server,
        client_for(server) as client,
        client.stream("GET", "/events", params={"after": 0}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _read_events(r, 3)
        replayed = await anext(events)
        assert replayed["type"] == "task:created"
        assert replayed["data"]["payload"]["taskId"] == first.id  # type: ignore[index]
        task = await app.tasks.add("Live")
        live = await asyncio.wait_for(anext(events), 5)
        assert live["type"] == "task:created"
        assert live["data"]["payload"]["taskId"] == task.id  # type: ignore[index]
        assert int(live["id"]) > int(replayed["id"])  # type: ignore[call-overload]
        await app.tasks.cancel(task.id)
        cancelled = await asyncio.wait_for(anext(events), 5)
        assert cancelled["type"] == "task:cancelled"


async def test_events_stream_filters_by_type(app: Polpo) -> None:
    async with (
        running_api(app) as server,
        client_for(server) as client,
        client.stream("GET", "/events", params={"types": "approval:*"}) as r,
    ):
        events = _read_events(r, 1)
        nxt = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0)  # let the request reach the server
        task = await app.tasks.add("Gate me")
        await app.approvals.request(task.id, gate="review", hook="task:complete")
        got = await asyncio.wait_for(nxt, 5)
        assert got["type"] == "approval:requested"


async def test_stopping_the_server_ends_open_streams(app: Polpo) -> None:
    server_cm = running_api(app)
    server = await server_cm.__aenter__()
    client = client_for(server)
    try:
        async with client.stream("GET", "/events") as r:
            assert r.status_code == 200
            await asyncio.wait_for(server_cm.__aexit__(None, None, None), 8)
            with pytest.raises(httpx.HTTPError):
                async for _ in r.aiter_lines():
                    pass
                raise httpx.ReadError("stream ended")
    finally:
        await client.aclose()


async def test_dashboard_is_served(app: Polpo) -> None:
    async with running_api(app) as server, httpx.AsyncClient(timeout=10) as client:
        await sign_in(server, client)
        page = await client.get(server.url + "/")
        assert page.status_code == 200 and "<title>Polpo</title>" in page.text
        js = await client.get(server.url + "/static/app.js")
        assert js.status_code == 200 and "/api/v1" in js.text
