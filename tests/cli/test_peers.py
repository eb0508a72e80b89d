"""``polpo peers …`` and ``polpo pair …`` as a user runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import SYSTEM_CLOCK
from polpo.store.tables import outbox
from tests.cli.conftest import Cli, run_polpo
from tests.conftest import write_project
from tests.services.peers_helpers import (
    OWNER,
    TG_USER,
    gateway_config,
    loaded_for,
    pairing_request,
    seen,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write_project(root, gateway_config())
    return root


def in_project(root: Path, fn: object) -> object:
    async def go() -> object:
        app = await Polpo.open(loaded_for(root), clock=SYSTEM_CLOCK)
        try:
            return await fn(app)  # type: ignore[operator]
        finally:
            await app.close()

    return asyncio.run(go())


def test_peers_list_allow_revoke(cli: Cli, project: Path) -> None:
    async def setup(app: Polpo) -> None:
        await seen(app, OWNER, "Owner")
        await seen(app, TG_USER, "Bob", ago=30)

    in_project(project, setup)
    r = cli("peers", "list")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    owner = next(line for line in lines if OWNER in line)
    bob = next(line for line in lines if TG_USER in line)
    assert "yes (admin)" in owner and "Owner" in owner
    assert "no (not allowed)" in bob and "Bob" in bob

    r = cli("peers", "allow", "telegram:4242")
    assert (r.code, r.out.strip()) == (0, "Allowed telegram:4242 (on the allowlist).")
    listed = cli("peers", "list", "--channel", "telegram", "--json").json()
    assert [(p["id"], p["allowed"], p["why"]) for p in listed] == [(TG_USER, True, "allowlist")]

    r = cli("peers", "revoke", "telegram:4242")
    assert (r.code, r.out.strip()) == (0, "Revoked telegram:4242 from the allowlist.")
    r = cli("peers", "revoke", "telegram:4242")
    assert (r.code, r.err.strip()) == (1, "Error: telegram:4242 is not on the dynamic allowlist")


def test_peer_id_mistakes_are_one_line(cli: Cli) -> None:
    r = cli("peers", "allow", "bob")
    assert r.code == 2 and r.err.count("\n") == 1
    assert r.err.startswith("Error: not a peer id: 'bob'")
    r = cli("peers", "link", OWNER, OWNER)
    assert r.code == 2 and "cannot link whatsapp:39123456789 with itself" in r.err


def test_peers_link_and_unlink(cli: Cli) -> None:
    r = cli("peers", "link", "+39 123 456 789@s.whatsapp.net", "telegram:4242")
    assert r.code == 0, r.err
    assert r.out.strip() == f"Linked: {OWNER}, {TG_USER} (canonical {OWNER})."
    assert "Already linked" in cli("peers", "link", OWNER, TG_USER).out
    tg = next(p for p in cli("peers", "list", "--json").json() if p["id"] == TG_USER)
    assert (tg["linkedTo"], tg["allowed"], tg["why"], tg["via"]) == (OWNER, True, "linked", OWNER)
    r = cli("peers", "unlink", TG_USER)
    assert r.code == 0 and "its access now: no (not allowed)" in r.out
    assert cli("peers", "link", OWNER, TG_USER).code == 0
    r = cli("peers", "unlink", TG_USER, "--json")
    assert r.code == 0, r.err
    unlinked = r.json()
    assert (unlinked["id"], unlinked["linkedTo"], unlinked["allowed"]) == (TG_USER, None, False)


def test_pair_list_and_approve(cli: Cli, project: Path) -> None:
    assert cli("pair", "list").out.strip() == "No pending pairing requests."

    async def setup(app: Polpo) -> None:
        await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")

    in_project(project, setup)
    r = cli("pair", "list")
    assert r.code == 0 and "K7M2XPG9" in r.out and "Bob" in r.out and "pending" in r.out
    assert "Approve: polpo pair approve K7M2XPG9" in r.out
    assert [x["code"] for x in cli("pair", "list", "--json").json()] == ["K7M2XPG9"]

    r = cli("pair", "approve", "k7m2-xpg9")
    assert r.code == 0, r.err
    assert "Added Bob (telegram:4242) on telegram" in r.out
    assert cli("pair", "list").out.strip() == "No pending pairing requests."
    assert [x["status"] for x in cli("pair", "list", "--all", "--json").json()] == ["approved"]

    again = cli("pair", "approve", "K7M2XPG9")
    assert again.code == 1 and again.err.startswith("Error: Code K7M2XPG9 was already used")
    unknown = cli("pair", "approve", "NOPE2222")
    assert unknown.code == 1 and "No pairing request has code NOPE2222" in unknown.err


def test_pair_approve_from_a_separate_process_queues_the_confirmation(project: Path) -> None:
    """The row a running `polpo serve` sends: durable, pending, owned by serve (owner NULL)."""

    async def setup(app: Polpo) -> None:
        await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")

    in_project(project, setup)
    r = run_polpo(project, "pair", "approve", "K7M2XPG9")
    assert r.code == 0, r.err
    assert "Traceback" not in r.err

    async def rows(app: Polpo) -> list[tuple[object, ...]]:
        async with app.store.read() as conn:
            return [
                tuple(row)
                for row in await conn.execute(
                    sa.select(outbox.c.channel, outbox.c.chat_id, outbox.c.status, outbox.c.owner)
                )
            ]

    assert in_project(project, rows) == [("telegram", "4242", "pending", None)]
