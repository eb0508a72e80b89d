"""A real uvicorn server on a free loopback port, and an httpx client for it.

The client authenticates as the CLI does: ``Authorization: Bearer`` with the
token the server writes to ``.polpo/serve.json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from polpo.api.server import ApiServer
from polpo.app import Polpo
from polpo.host import Host
from polpo.serve import ServeOptions
from polpo.servefile import read_serve_file

ServerFactory = Callable[..., Any]


@asynccontextmanager
async def running_api(
    app: Polpo, *, api_key: str | None = None, host: Host | None = None
) -> AsyncIterator[ApiServer]:
    server = ApiServer(
        app, host or Host(app), ServeOptions(host="127.0.0.1", port=0, api_key=api_key)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def bearer(server: ApiServer) -> dict[str, str]:
    """The headers the CLI sends: the server's token from ``.polpo/serve.json``."""
    found = read_serve_file(server.app.loaded.polpo_dir)
    assert found is not None and found.url == server.url
    return {"Authorization": f"Bearer {found.token}"}


def client_for(server: ApiServer, **kwargs: Any) -> httpx.AsyncClient:
    """An authenticated client of ``/api/v1`` on ``server``."""
    return httpx.AsyncClient(
        base_url=server.url + "/api/v1", timeout=10, headers=bearer(server), **kwargs
    )


@pytest.fixture
async def api(app: Polpo) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(app) as server, client_for(server) as client:
        yield client


async def sign_in(server: ApiServer, client: httpx.AsyncClient) -> None:
    """Sign ``client`` in as a browser does: a one-time link, then its cookie."""
    async with client_for(server) as cli:
        link = (await cli.post("/dashboard/link", json={})).json()["url"]
    r = await client.get(link, follow_redirects=True)
    assert r.status_code == 200, r.text
