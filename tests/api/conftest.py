"""A real uvicorn server on a free loopback port, and an httpx client for it."""

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


@pytest.fixture
async def api(app: Polpo) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_api(app) as server,
        httpx.AsyncClient(base_url=server.url + "/api/v1", timeout=10) as client,
    ):
        yield client
