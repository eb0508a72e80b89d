"""``/api/v1/peers`` and ``/api/v1/pairing`` over a real server socket."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.config import LoadedConfig
from polpo.store.tables import outbox
from tests.api.conftest import running_api, sign_in
from tests.services.peers_helpers import OWNER, TG_USER, loaded_for, pairing_request, seen


@pytest.fixture
def loaded(project: Path) -> LoadedConfig:
    return loaded_for(project)


async def test_list_allow_revoke(api: httpx.AsyncClient, app: Polpo) -> None:
    await seen(app, OWNER, "Owner")
    await seen(app, TG_USER, "Bob", ago=10)
    listed = (await api.get("/peers")).json()
    assert [(p["id"], p["allowed"], p["why"], p["isAdmin"]) for p in listed] == [
        (OWNER, True, "admin", True),
        (TG_USER, False, "not allowed", False),
    ]
    assert [p["id"] for p in (await api.get("/peers", params={"channel": "telegram"})).json()] == [
        TG_USER
    ]

    r = await api.post("/peers/telegram:4242/allow")
    assert r.status_code == 200 and (r.json()["allowed"], r.json()["why"]) == (True, "allowlist")
    assert (await api.get("/peers/telegram:4242")).json()["allowed"] is True

    r = await api.post("/peers/telegram:4242/revoke", json={"by": "dashboard"})
    assert r.status_code == 200 and r.json()["allowed"] is False
    r = await api.post("/peers/telegram:4242/revoke")
    assert (r.status_code, r.json()) == (
        404,
        {"error": "telegram:4242 is not on the dynamic allowlist"},
    )
    r = await api.post("/peers/bob/allow")
    assert r.status_code == 422 and r.json()["error"].startswith("not a peer id: 'bob'")
    assert (await api.get("/peers/telegram:1")).status_code == 404


async def test_link_and_unlink(api: httpx.AsyncClient) -> None:
    r = await api.post("/peers/link", json={"a": "whatsapp:+39 123 456 789", "b": TG_USER})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "peerId": TG_USER,
        "canonical": OWNER,
        "members": [OWNER, TG_USER],
        "already": False,
    }
    tg = (await api.get(f"/peers/{TG_USER}")).json()
    assert (tg["linkedTo"], tg["allowed"], tg["why"]) == (OWNER, True, "linked")
    r = await api.post("/peers/link", json={"a": OWNER})
    assert r.status_code == 422 and r.json()["error"].startswith("b: ")
    r = await api.post(f"/peers/{TG_USER}/unlink")
    assert r.status_code == 200 and r.json()["linkedTo"] is None


async def test_pairing_list_and_approve(api: httpx.AsyncClient, app: Polpo) -> None:
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")
    listed = (await api.get("/pairing")).json()
    assert [(r["code"], r["peerId"], r["status"]) for r in listed] == [
        ("K7M2XPG9", TG_USER, "pending")
    ]
    app.outbox_ready.clear()
    r = await api.post("/pairing/k7m2-xpg9/approve")
    assert r.status_code == 200, r.text
    assert r.json()["peerId"] == TG_USER and r.json()["displayName"] == "Bob"
    assert app.outbox_ready.is_set()
    async with app.store.read() as conn:
        rows = (await conn.execute(sa.select(outbox.c.chat_id, outbox.c.status))).all()
    assert [tuple(row) for row in rows] == [("4242", "pending")]
    assert (await api.get("/pairing")).json() == []
    assert [r["status"] for r in (await api.get("/pairing", params={"status": "all"})).json()] == [
        "approved"
    ]

    r = await api.post("/pairing/K7M2XPG9/approve")
    assert r.status_code == 409 and "already used" in r.json()["error"]
    r = await api.post("/pairing/NOPE2222/approve")
    assert r.status_code == 409 and "No pairing request has code NOPE2222" in r.json()["error"]
    r = await api.get("/pairing", params={"status": "weird"})
    assert r.status_code == 422 and "unknown pairing status" in r.json()["error"]


async def test_dashboard_lists_pairing_requests(app: Polpo) -> None:
    """The page has the section; tests/browser shows a request arriving and "Let in"."""
    async with running_api(app) as server, httpx.AsyncClient(timeout=10) as client:
        await sign_in(server, client)
        page = (await client.get(server.url + "/")).text
    assert '<section id="pairing">' in page
