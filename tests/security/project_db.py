"""Reading and seeding the attacked project's database from the test process
(the same database serve uses, through the same services)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from polpo.app import Polpo
from polpo.config import load_config, resolve_storage_url
from polpo.errors import NotFoundError
from tests.services.peers_helpers import pairing_request

T = TypeVar("T")


def with_project(root: Path, fn: Callable[[Polpo], Awaitable[T]]) -> T:
    """Run ``fn`` on the project, in a thread of its own (a caller such as Playwright's
    sync API may already run an event loop in this one)."""

    async def go() -> T:
        # the database serve's config names (a serve shared by the session has its own
        # PostgreSQL schema, not this test's)
        loaded = load_config(cwd=root)
        url = resolve_storage_url(loaded.config.settings.storage.url, root)
        app = await Polpo.open(loaded, store_url=url)
        try:
            return await fn(app)
        finally:
            await app.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def peer_allowed(root: Path, peer: str) -> bool:
    async def read(app: Polpo) -> bool:
        try:
            return (await app.peers.get(peer)).allowed
        except NotFoundError:
            return False

    return with_project(root, read)


def add_pairing_request(root: Path, code: str, peer: str) -> None:
    with_project(root, lambda app: pairing_request(app, code, peer, "Mallory"))


def pairing_status(root: Path, code: str) -> str:
    async def read(app: Polpo) -> str:
        found = [r for r in await app.peers.list_pairing("all") if r.code == code]
        return found[0].status if found else "missing"

    return with_project(root, read)
