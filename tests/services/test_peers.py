"""PeerService: access status, the dynamic allowlist, pairing approval with lockout, linking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.core.models import Event
from polpo.core.pairing import CODE_ALPHABET
from polpo.errors import NotFoundError, ValidationError
from polpo.services.peers import LinkError, PairingError, normalize_code
from polpo.store.tables import events, outbox, peers
from tests.services.peers_helpers import (
    FRIEND,
    OWNER,
    TG_USER,
    gateway_config,
    loaded_for,
    open_project,
    pairing_request,
    seen,
)


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Polpo]:
    async with open_project(tmp_path / "proj", clock) as polpo:
        yield polpo


async def event_types(app: Polpo) -> list[str]:
    async with app.store.read() as conn:
        return list((await conn.execute(sa.select(events.c.type).order_by(events.c.id))).scalars())


async def outbox_rows(app: Polpo) -> list[sa.Row[tuple[object, ...]]]:
    async with app.store.read() as conn:
        return list((await conn.execute(sa.select(outbox))).all())


# -- access and the allowlist -------------------------------------------------------


async def test_list_shows_access_and_why(app: Polpo) -> None:
    await seen(app, OWNER, "Owner")
    await seen(app, FRIEND, "Friend", ago=30)
    await seen(app, TG_USER, "Tg", ago=60)
    listed = {p.id: p for p in await app.peers.list()}
    assert (listed[OWNER].allowed, listed[OWNER].why, listed[OWNER].is_admin) == (
        True,
        "admin",
        True,
    )
    assert (listed[FRIEND].allowed, listed[FRIEND].why) == (False, "not allowed")
    assert (listed[TG_USER].allowed, listed[TG_USER].why) == (False, "not allowed")
    assert [p.id for p in await app.peers.list()] == [OWNER, FRIEND, TG_USER]  # recent first
    assert [p.id for p in await app.peers.list(channel="telegram")] == [TG_USER]


async def test_allow_accepts_raw_forms_and_revoke_takes_it_back(app: Polpo) -> None:
    for raw in ("whatsapp:+39 111-222-333", "39111222333@s.whatsapp.net", "whatsapp:0039111222333"):
        info = await app.peers.allow(raw, by="cli")
        assert (info.id, info.allowed, info.why) == (FRIEND, True, "allowlist")
    # allowing again is not a second event
    assert (await event_types(app)).count("peer:allowed") == 1
    # a peer on the allowlist that never wrote is still listed
    assert FRIEND in [p.id for p in await app.peers.list()]

    after = await app.peers.revoke("+39 111 222 333@s.whatsapp.net", by="cli")
    assert (after.allowed, after.why) == (False, "not allowed")
    assert "peer:revoked" in await event_types(app)
    with pytest.raises(NotFoundError, match="not on the dynamic allowlist"):
        await app.peers.revoke(FRIEND, by="cli")


async def test_bad_peer_ids_are_clear_errors(app: Polpo) -> None:
    with pytest.raises(ValidationError, match="not a peer id"):
        await app.peers.allow("12345", by="cli")  # two channels configured: which one?
    with pytest.raises(ValidationError, match="not a phone number"):
        await app.peers.allow("whatsapp:abc", by="cli")
    with pytest.raises(ValidationError, match="not a Telegram user id"):
        await app.peers.allow("telegram:@bob", by="cli")


async def test_revoke_cannot_remove_config_access(app: Polpo) -> None:
    await app.peers.allow(OWNER, by="cli")
    after = await app.peers.revoke(OWNER, by="cli")
    assert (after.allowed, after.why) == (True, "admin")  # allowFrom in polpo.json still lets it in


# -- pairing -------------------------------------------------------------------------


async def test_approve_pairing_adds_the_peer_and_queues_its_confirmation(app: Polpo) -> None:
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")
    assert [r.code for r in await app.peers.list_pairing()] == ["K7M2XPG9"]
    app.outbox_ready.clear()

    done = await app.peers.approve_pairing(" k7m2-xpg9 ", by=OWNER)

    assert (done.peer_id, done.display_name, done.label) == (TG_USER, "Bob", "Bob (telegram:4242)")
    assert (await app.peers.access(TG_USER)).why == "allowlist"
    assert app.outbox_ready.is_set()
    (row,) = await outbox_rows(app)
    assert (row.channel, row.chat_id, row.peer_id, row.status) == (
        "telegram",
        "4242",
        TG_USER,
        "pending",
    )
    assert "You're in" in row.text and "demo" in row.text
    assert row.dedupe_key == "pairing:K7M2XPG9:granted"
    assert await app.peers.list_pairing() == []
    (approved,) = await app.peers.list_pairing("approved")
    assert (approved.approved_by, approved.approved_at) == (OWNER, app.clock.now())
    types = await event_types(app)
    assert "peer:paired" in types and "peer:allowed" in types


async def test_paired_event_reaches_subscribers(app: Polpo) -> None:
    got: list[Event] = []

    async def handler(ev: Event) -> None:
        got.append(ev)

    app.bus.subscribe("peer:paired", handler)
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob")
    await app.peers.approve_pairing("K7M2XPG9", by="cli")
    assert [e.payload["peerId"] for e in got] == [TG_USER]
    assert got[0].payload["code"] == "K7M2XPG9" and got[0].payload["by"] == "cli"


async def test_used_expired_and_unknown_codes_are_refused(app: Polpo, clock: FakeClock) -> None:
    await pairing_request(app, "AAAABBBB", TG_USER, "Bob")
    await app.peers.approve_pairing("AAAABBBB", by="cli")
    with pytest.raises(
        PairingError, match="already used: Bob \\(telegram:4242\\) was added by cli"
    ):
        await app.peers.approve_pairing("aaaabbbb", by="cli")

    clock.advance(1)
    await pairing_request(app, "CCCCDDDD", "telegram:77", "Eve")
    clock.advance(3600)  # expires_at <= now: expired, whatever the status column says
    with pytest.raises(PairingError, match=r"Code CCCCDDDD expired at .* UTC"):
        await app.peers.approve_pairing("CCCCDDDD", by="cli")
    assert not (await app.peers.access("telegram:77")).allowed
    assert [r.status for r in await app.peers.list_pairing("all")] == ["expired", "approved"]

    with pytest.raises(PairingError, match="No pairing request has code ZZZZ2222"):
        await app.peers.approve_pairing("zzzz-2222", by="cli")
    # a failed approval queued nothing more
    assert len(await outbox_rows(app)) == 1


async def test_five_wrong_codes_lock_pair_for_ten_minutes(app: Polpo, clock: FakeClock) -> None:
    await pairing_request(app, "GOODCODE", TG_USER, "Bob")
    for _ in range(4):
        with pytest.raises(PairingError, match="No pairing request") as e:
            await app.peers.approve_pairing("WRONG222", by=FRIEND)
        assert "locked" not in str(e.value)
        clock.advance(60)
    with pytest.raises(PairingError, match="locked for you until"):
        await app.peers.approve_pairing("WRONG222", by=FRIEND)
    # locked: even the right code is refused, and the lockout does not grow
    clock.advance(9 * 60)
    with pytest.raises(PairingError, match="about 1 min"):
        await app.peers.approve_pairing("GOODCODE", by=FRIEND)
    assert await app.peers.pair_locked_until(FRIEND) is not None
    # another peer, and the CLI, are not affected
    assert await app.peers.pair_locked_until(OWNER) is None
    clock.advance(60)
    assert await app.peers.pair_locked_until(FRIEND) is None
    assert (await app.peers.approve_pairing("GOODCODE", by=FRIEND)).peer_id == TG_USER


async def test_wrong_codes_spread_over_more_than_ten_minutes_do_not_lock(
    app: Polpo, clock: FakeClock
) -> None:
    for _ in range(8):
        with pytest.raises(PairingError) as e:
            await app.peers.approve_pairing("WRONG222", by=FRIEND)
        assert "locked" not in str(e.value)
        clock.advance(151)  # 5 failures span 604 s > 10 min


async def test_cli_wrong_codes_never_lock(app: Polpo) -> None:
    for _ in range(7):
        with pytest.raises(PairingError) as e:
            await app.peers.approve_pairing("WRONG222", by="cli")
        assert "locked" not in str(e.value)


def test_code_normalisation() -> None:
    assert normalize_code(" k7m2-xpg9\t") == "K7M2XPG9"
    assert normalize_code("k7m2 xpg9") == "K7M2XPG9"
    assert "0" not in CODE_ALPHABET and "O" not in CODE_ALPHABET and "1" not in CODE_ALPHABET


# -- linking -----------------------------------------------------------------------------


async def test_link_code_links_and_shares_access(app: Polpo, clock: FakeClock) -> None:
    await seen(app, OWNER, "Owner")
    await seen(app, TG_USER, "Owner on Telegram")
    code = await app.peers.create_link_code(OWNER)
    assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)

    result = await app.peers.use_link_code(TG_USER, code.lower())
    assert (result.canonical, result.members, result.already) == (OWNER, (OWNER, TG_USER), False)
    assert await app.peers.canonical(TG_USER) == OWNER
    assert await app.peers.canonical(OWNER) == OWNER
    tg = await app.peers.access(TG_USER)
    assert (tg.allowed, tg.why, tg.via, tg.is_admin) == (True, "linked", OWNER, True)
    assert "peer:linked" in await event_types(app)

    with pytest.raises(LinkError, match="already used"):
        await app.peers.use_link_code(TG_USER, code)


async def test_link_code_expired_unknown_and_own(app: Polpo, clock: FakeClock) -> None:
    await seen(app, OWNER)
    await seen(app, TG_USER)
    code = await app.peers.create_link_code(OWNER)
    with pytest.raises(LinkError, match="belongs to this identity"):
        await app.peers.use_link_code(OWNER, code)
    clock.advance(600)
    with pytest.raises(LinkError, match="expired"):
        await app.peers.use_link_code(TG_USER, code)
    with pytest.raises(LinkError, match="No link code"):
        await app.peers.use_link_code(TG_USER, "NOPE2345")
    assert await app.peers.canonical(TG_USER) == TG_USER


async def test_linking_never_chains(app: Polpo) -> None:
    a, b, c = OWNER, TG_USER, "telegram:99"
    for p in (a, b, c):
        await seen(app, p)
    await app.peers.link(b, c, by="cli")  # c → b
    await app.peers.link(a, b, by="cli")  # b's whole group joins a
    async with app.store.read() as conn:
        linked = dict((await conn.execute(sa.select(peers.c.id, peers.c.linked_to))).all())
    assert linked == {a: None, b: a, c: a}
    # linking through a member uses its canonical
    d = "whatsapp:39555666777"
    result = await app.peers.link(c, d, by="cli")
    assert result.canonical == a and await app.peers.canonical(d) == a
    again = await app.peers.link(b, d, by="cli")
    assert again.already


async def test_link_unknown_peer_and_self(app: Polpo) -> None:
    with pytest.raises(ValidationError, match="with itself"):
        await app.peers.link(OWNER, "whatsapp:+39123456789", by="cli")
    result = await app.peers.link(OWNER, TG_USER, by="cli")  # neither wrote yet
    assert result.members == (OWNER, TG_USER)
    info = {p.id: p for p in await app.peers.list()}[TG_USER]
    assert info.last_seen is None and info.linked_to == OWNER


async def test_unlink(app: Polpo) -> None:
    for p in (OWNER, TG_USER, "telegram:99"):
        await seen(app, p)
    await app.peers.link(OWNER, TG_USER, by="cli")
    await app.peers.link(OWNER, "telegram:99", by="cli")
    await app.peers.unlink(OWNER, by="cli")  # the canonical leaves; the oldest member leads
    assert await app.peers.canonical(OWNER) == OWNER
    assert await app.peers.canonical("telegram:99") == TG_USER
    assert not (await app.peers.access(TG_USER)).allowed
    with pytest.raises(NotFoundError, match="not linked"):
        await app.peers.unlink(OWNER, by="cli")


async def test_an_open_channel_is_not_shared_through_a_link(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Anyone may talk on an open channel; linking that identity grants nothing elsewhere."""
    cfg = gateway_config()
    cfg["settings"]["notifications"]["channels"]["whatsapp"]["gateway"] = {
        "dmPolicy": "open",
        "admins": [],
    }
    app = await Polpo.open(loaded_for(tmp_path / "open", cfg), clock=clock)
    try:
        await app.peers.link(FRIEND, TG_USER, by="cli")
        assert (await app.peers.access(FRIEND)).why == "open"
        tg = await app.peers.access(TG_USER)
        assert (tg.allowed, tg.why) == (False, "not allowed")
        await app.peers.allow(FRIEND, by="cli")  # a personal grant is shared
        tg = await app.peers.access(TG_USER)
        assert (tg.allowed, tg.why, tg.via) == (True, "linked", FRIEND)
    finally:
        await app.close()


async def test_allowing_a_peer_with_a_pending_code_approves_it(app: Polpo) -> None:
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")
    app.outbox_ready.clear()
    await app.peers.allow("telegram:4242", by="cli")
    assert await app.peers.list_pairing() == []
    (row,) = await outbox_rows(app)
    assert row.chat_id == "4242" and "You're in" in row.text
    assert app.outbox_ready.is_set()


async def test_an_admin_named_in_another_channels_gateway_is_an_admin(
    tmp_path: Path, clock: FakeClock
) -> None:
    cfg = gateway_config()
    cfg["settings"]["notifications"]["channels"]["whatsapp"]["gateway"]["admins"] = [
        "39123456789",
        "telegram:4242",
    ]
    app = await Polpo.open(loaded_for(tmp_path / "admins", cfg), clock=clock)
    try:
        tg = await app.peers.access(TG_USER)
        assert (tg.allowed, tg.why, tg.is_admin) == (True, "admin", True)
    finally:
        await app.close()
