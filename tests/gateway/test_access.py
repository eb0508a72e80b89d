"""SPEC §3 end to end through a MemoryChannel: who gets an answer, who gets silence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.clock import FakeClock
from polpo.core.models import Event
from polpo.core.pairing import CODE_ALPHABET
from polpo.llm.base import ChatReply
from polpo.store.tables import allowlist, pairing_requests
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, STRANGER, OpenProject, inbox_rows, outbox_rows


async def test_allowlist_answers_allowed_and_silently_ignores_others(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, OWNER, "hi") == ["echo: hi"]
        assert await exchange(gw, whatsapp, STRANGER, "hi") == []
        assert await exchange(gw, whatsapp, STRANGER, "/status") == []
        assert [c.text for c in responder.calls] == ["hi"]
        assert [m.peer for m in whatsapp.read] == [OWNER]  # no read receipt for the stranger
        assert gw.gateway.stats["ignored:not allowed"] == 2
    rows = await inbox_rows(app)
    # a stranger's messages leave only what dedupe needs: no sender, no text
    assert [(r.peer_id, r.status, r.text) for r in rows] == [
        (f"whatsapp:{OWNER}", "done", "hi"),
        ("", "ignored", ""),
        ("", "ignored", ""),
    ]
    assert len(await outbox_rows(app)) == 1


@pytest.mark.parametrize(
    "entry",
    [
        "+39 123 456 789",
        "0039-123-456-789",
        "(39) 123.456.789",
        "39123456789@s.whatsapp.net",
        "39123456789:12@s.whatsapp.net",
        "whatsapp:+39123456789",
    ],
)
async def test_allow_from_forms(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder, entry: str
) -> None:
    app = await open_project(allowFrom=[entry])
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, OWNER, "hi") == ["echo: hi"]
        assert await exchange(gw, whatsapp, STRANGER, "hi") == []


async def test_wildcard_and_open_let_everyone_in(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(allowFrom=["*"])
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, STRANGER, "hi") == ["echo: hi"]


async def test_open_policy(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(dmPolicy="open", allowFrom=[])
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, STRANGER, "hi") == ["echo: hi"]


async def test_disabled_ignores_everyone_even_the_owner(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(dmPolicy="disabled")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, OWNER, "/help") == []
        assert await exchange(gw, whatsapp, OWNER, "hi", is_self_chat=True, is_from_me=True) == []
    assert responder.calls == []


async def test_dynamic_allowlist_admits_and_revoking_silences(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, STRANGER, "hi") == []
        async with app.store.write() as conn:
            await conn.execute(
                allowlist.insert().values(
                    peer_id=f"whatsapp:{STRANGER}",
                    added_by="cli",
                    added_at=clock.now(),
                    source="cli",
                )
            )
        assert await exchange(gw, whatsapp, STRANGER, "again") == ["echo: again"]
        async with app.store.write() as conn:
            await conn.execute(allowlist.delete())
        assert await exchange(gw, whatsapp, STRANGER, "still?") == []


class HeldResponder(RecordingResponder):
    """Answers once ``go`` is set: the sender's next messages wait in its lane."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def respond(
        self, *, peer_id: str, text: str, history: list[Any], pictures: Sequence[Any] = ()
    ) -> ChatReply:
        await self.go.wait()
        return await super().respond(peer_id=peer_id, text=text, history=history)


async def test_a_message_queued_before_its_sender_was_revoked_is_stored_then_forgotten(
    open_project: OpenProject, whatsapp: MemoryChannel, clock: FakeClock
) -> None:
    app = await open_project()
    async with app.store.write() as conn:
        await conn.execute(
            allowlist.insert().values(
                peer_id=f"whatsapp:{STRANGER}", added_by="cli", added_at=clock.now(), source="cli"
            )
        )
    responder = HeldResponder()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await whatsapp.receive(STRANGER, "first")
        await whatsapp.receive(STRANGER, "second, queued")
        # admitted when it arrived: stored whole before the channel could acknowledge it
        rows = await inbox_rows(app)
        assert [(r.status, r.text) for r in rows] == [
            ("received", "first"),
            ("received", "second, queued"),
        ]
        async with app.store.write() as conn:
            await conn.execute(allowlist.delete())
        responder.go.set()
        await gw.settle()
        assert [s.text for s in whatsapp.sent] == ["echo: first"]
    # judged again in its turn: not allowed any more, and nothing of it is kept
    rows = await inbox_rows(app)
    assert [(r.status, r.outcome, r.peer_id, r.text, r.payload) for r in rows][1] == (
        "ignored",
        "not allowed",
        "",
        "",
        {},
    )


async def _pairing_rows(app: object) -> list[sa.Row[object]]:
    async with app.store.read() as conn:  # type: ignore[attr-defined]
        return list(
            (
                await conn.execute(
                    sa.select(pairing_requests).order_by(pairing_requests.c.created_at)
                )
            ).all()
        )


async def test_pairing_code_then_throttled_resend_then_expiry(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(dmPolicy="pairing")
    events: list[Event] = []

    async def seen(e: Event) -> None:
        events.append(e)

    app.bus.subscribe("peer:*", seen)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        [reply] = await exchange(gw, whatsapp, STRANGER, "hello?", display_name="Mario")
        [row] = await _pairing_rows(app)
        code = row.code
        assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
        assert code in reply and f"/pair {code}" in reply and "Mario" in reply
        assert (row.peer_id, row.status, row.expires_at) == (
            f"whatsapp:{STRANGER}",
            "pending",
            clock.now() + 3600,
        )
        assert [(e.type, e.payload) for e in events] == [
            (
                "peer:pairing_requested",
                {
                    "peerId": f"whatsapp:{STRANGER}",
                    "displayName": "Mario",
                    "code": code,
                    "channel": "whatsapp",
                },
            )
        ]
        # writing again within 10 minutes: silence; after 10 minutes: the same code once more
        assert await exchange(gw, whatsapp, STRANGER, "hello??") == []
        clock.advance(9 * 60)
        assert await exchange(gw, whatsapp, STRANGER, "anyone?") == []
        clock.advance(61)
        [again] = await exchange(gw, whatsapp, STRANGER, "anyone??")
        assert code in again
        assert await exchange(gw, whatsapp, STRANGER, "pls") == []
        # after 60 minutes the code is dead, and its peer waits 24 hours for a new one
        clock.advance(3600)
        assert await exchange(gw, whatsapp, STRANGER, "back again") == []
        expired_at = row.expires_at
        clock.set(expired_at + 24 * 3600 - 1)
        assert await exchange(gw, whatsapp, STRANGER, "still there?") == []
        clock.advance(1)
        [fresh] = await exchange(gw, whatsapp, STRANGER, "back again")
        rows = await _pairing_rows(app)
        assert len(rows) == 2 and rows[0].status == "expired" and rows[1].code in fresh
        assert rows[1].code != code
        assert responder.calls == []
        assert len(events) == 2


async def test_at_most_three_pending_pairings_per_channel(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(dmPolicy="pairing")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        for n in range(3):
            assert len(await exchange(gw, whatsapp, f"4915100000{n}", "hi")) == 1
        # the fourth is told once to try later, then silence
        [later] = await exchange(gw, whatsapp, "49151000009", "me too")
        assert "try again later" in later
        assert await exchange(gw, whatsapp, "49151000009", "me too!") == []
        assert len(await _pairing_rows(app)) == 3
        # a slot frees when one expires
        clock.advance(3601)
        assert len(await exchange(gw, whatsapp, "49151000009", "now?")) == 1


async def test_a_paired_peer_is_answered(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(dmPolicy="pairing")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, STRANGER, "hi")
        async with app.store.write() as conn:  # what /pair CODE does (ACCESS+COMMANDS)
            await conn.execute(
                allowlist.insert().values(
                    peer_id=f"whatsapp:{STRANGER}",
                    added_by=f"whatsapp:{OWNER}",
                    added_at=clock.now(),
                    source="pairing",
                )
            )
        assert await exchange(gw, whatsapp, STRANGER, "thanks") == ["echo: thanks"]


async def test_self_chat_is_the_owners_console_and_our_echoes_are_not_input(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    # the owner is not even in allowFrom: the self-chat is the console anyway
    app = await open_project(allowFrom=[])
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        chat = f"{STRANGER}@s.whatsapp.net"
        replies = await exchange(
            gw, whatsapp, STRANGER, "hi bot", is_self_chat=True, is_from_me=True, chat_id=chat
        )
        assert replies == ["echo: hi bot"]
        assert whatsapp.sent[-1].chat_id == chat
        # WhatsApp shows our own reply in the self-chat as a message "from me": not input
        echo = whatsapp.sent[-1]
        assert (
            await exchange(
                gw,
                whatsapp,
                STRANGER,
                echo.text,
                message_id=echo.message_id,
                is_self_chat=True,
                is_from_me=True,
                chat_id=chat,
            )
            == []
        )
        assert len(responder.calls) == 1


async def test_self_chat_off(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(selfChat=False)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, OWNER, "hi", is_self_chat=True, is_from_me=True) == []


async def test_messages_from_me_outside_the_self_chat_are_ignored(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert (
            await exchange(
                gw,
                whatsapp,
                OWNER,
                "I wrote this to a friend",
                is_from_me=True,
                chat_id="4477@s.whatsapp.net",
            )
            == []
        )
    assert responder.calls == []


async def test_groups_are_ignored_unless_group_policy_is_open(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert (
            await exchange(gw, whatsapp, OWNER, "hi all", is_group=True, chat_id="123@g.us") == []
        )
    app2 = await open_project(groupPolicy="open")
    channel = MemoryChannel("whatsapp")
    async with running_gateway(app2, channel, responder=responder) as gw:
        assert await exchange(gw, channel, OWNER, "hi all", is_group=True, chat_id="123@g.us") == [
            "echo: hi all"
        ]
        assert channel.sent[-1].chat_id == "123@g.us"
        # a stranger in the group: still no access, and no pairing code posted to the group
        assert await exchange(gw, channel, STRANGER, "me?", is_group=True, chat_id="123@g.us") == []


async def test_rate_limit_warns_once_then_stays_silent_until_the_window_passes(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(rateLimitPerMinute=3)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        for n in range(3):
            assert await exchange(gw, whatsapp, OWNER, f"m{n}") == [f"echo: m{n}"]
        [warning] = await exchange(gw, whatsapp, OWNER, "m3")
        assert "slow down" in warning.lower()
        assert await exchange(gw, whatsapp, OWNER, "m4") == []
        assert await exchange(gw, whatsapp, OWNER, "/status") == []
        clock.advance(61)
        assert await exchange(gw, whatsapp, OWNER, "m5") == ["echo: m5"]
        assert len(responder.calls) == 4


async def test_telegram_start_is_help_and_other_channels_allow_from_apply(
    open_project: OpenProject, telegram: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, telegram, responder=responder) as gw:
        [start] = await exchange(gw, telegram, "42", "/start")
        [help_] = await exchange(gw, telegram, "42", "/help@polpo_bot")
        assert start == help_ and "/status" in start
        # an unknown Telegram user on a pairing channel gets a code, never a command
        [code] = await exchange(gw, telegram, "777", "/status")
        assert "pairing code" in code
    assert responder.calls == []
