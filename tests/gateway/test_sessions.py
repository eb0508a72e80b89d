"""Sessions through the pipeline: history per person, idle reset, /new, linked and LID identities."""

from __future__ import annotations

import sqlalchemy as sa

from polpo.clock import FakeClock
from polpo.core.models import Event
from polpo.store.tables import peers, sessions
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, OWNER_PEER, OpenProject


async def test_history_grows_then_resets_after_idle_minutes(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project(sessionIdleMinutes=30)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "one")
        clock.advance(29 * 60)
        await exchange(gw, whatsapp, OWNER, "two")
        clock.advance(29 * 60)
        await exchange(gw, whatsapp, OWNER, "three")
        clock.advance(20 * 60)  # a command that leaves the conversation alone is no activity
        await exchange(gw, whatsapp, OWNER, "/status")
        clock.advance(11 * 60)
        await exchange(gw, whatsapp, OWNER, "four")
    assert [len(c.history) for c in responder.calls] == [0, 1, 2, 0]
    assert {c.peer_id for c in responder.calls} == {OWNER_PEER}
    async with app.store.read() as conn:
        rows = (await conn.execute(sa.select(sessions).order_by(sessions.c.created_at))).all()
    assert [r.ended_at is None for r in rows] == [False, True]


async def test_new_starts_a_fresh_session(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "one")
        await exchange(gw, whatsapp, OWNER, "two")
        [answer] = await exchange(gw, whatsapp, OWNER, "/new")
        assert "new" in answer.lower()
        await exchange(gw, whatsapp, OWNER, "three")
    assert [len(c.history) for c in responder.calls] == [0, 1, 0]


async def test_history_survives_a_restart(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "remember me")
    await app.close()
    app2 = await open_project(reopen=True)
    channel = MemoryChannel("whatsapp")
    async with running_gateway(app2, channel, responder=responder) as gw:
        await exchange(gw, channel, OWNER, "do you?")
    assert responder.calls[-1].history == [{"user": "remember me"}]


async def test_linked_identities_share_one_session(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    telegram: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, telegram, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, "from my phone")
        # what `/link` does (ACCESS+COMMANDS): the Telegram identity joins the WhatsApp person
        async with app.store.write() as conn:
            await conn.execute(
                peers.insert().values(
                    id="telegram:555",
                    channel="telegram",
                    first_seen=clock.now(),
                    last_seen=clock.now(),
                    linked_to=OWNER_PEER,
                )
            )
        # telegram:555 is in no allowFrom: allowed (and admin) through the person it belongs to
        assert await exchange(gw, telegram, "555", "from my laptop") == ["echo: from my laptop"]
    assert [(c.peer_id, len(c.history)) for c in responder.calls] == [
        (OWNER_PEER, 0),
        (OWNER_PEER, 1),
    ]


async def test_a_lid_identity_is_merged_into_the_phone_one(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(dmPolicy="open", allowFrom=[])
    linked: list[dict[str, object]] = []

    async def on_linked(ev: Event) -> None:
        linked.append(ev.payload)

    app.bus.subscribe("peer:linked", on_linked)
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        assert await exchange(gw, whatsapp, "lid:88877766655", "hello from a lid") == [
            "echo: hello from a lid"
        ]
        # later the same person arrives with the phone number known
        await exchange(gw, whatsapp, OWNER, "now with my number", lid="88877766655@lid")
        await exchange(gw, whatsapp, "lid:88877766655", "lid again")
    assert [c.peer_id for c in responder.calls] == [
        "whatsapp:lid:88877766655",
        OWNER_PEER,
        OWNER_PEER,
    ]
    assert [len(c.history) for c in responder.calls] == [0, 1, 2]
    async with app.store.read() as conn:
        linked_to = (
            await conn.execute(
                sa.select(peers.c.linked_to).where(peers.c.id == "whatsapp:lid:88877766655")
            )
        ).scalar()
    assert linked_to == OWNER_PEER
    # the same link as /link: announced once, like PeerService's
    assert linked == [
        {"peerId": "whatsapp:lid:88877766655", "canonical": OWNER_PEER, "by": OWNER_PEER}
    ]


async def test_reject_without_reason_takes_the_next_message_as_feedback(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    task = await app.tasks.add("Ship it", agent="coder")
    approval = await app.approvals.request(task.id, gate="review", hook="task:complete")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        [question] = await exchange(gw, whatsapp, OWNER, f"/reject {approval.short_id}")
        assert (
            "reason" in question.lower()
            or "feedback" in question.lower()
            or "why" in question.lower()
        )
        await exchange(gw, whatsapp, OWNER, "the tests are red")
        # the question is answered: the next free text goes to the agent again
        assert await exchange(gw, whatsapp, OWNER, "what now?") == ["echo: what now?"]
    decided = await app.approvals.get(approval.id)
    assert (decided.status, decided.feedback, decided.resolved_by) == (
        "rejected",
        "the tests are red",
        OWNER_PEER,
    )
    assert [c.text for c in responder.calls] == ["what now?"]


async def test_an_expired_question_lets_the_text_go_to_the_agent(
    open_project: OpenProject,
    whatsapp: MemoryChannel,
    responder: RecordingResponder,
    clock: FakeClock,
) -> None:
    app = await open_project()
    task = await app.tasks.add("Ship it", agent="coder")
    approval = await app.approvals.request(task.id, gate="review", hook="task:complete")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        await exchange(gw, whatsapp, OWNER, f"/reject {approval.short_id}")
        clock.advance(11 * 60)
        assert await exchange(gw, whatsapp, OWNER, "never mind") == ["echo: never mind"]
    assert (await app.approvals.get(approval.id)).status == "pending"


async def test_a_lid_stranger_let_in_by_pairing_is_merged_into_the_phone_one(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    # a sender who is not admitted gets no peer row: the merge finds the LID identity
    # by its allowlist entry instead
    app = await open_project(dmPolicy="pairing")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        [code_reply] = await exchange(gw, whatsapp, "lid:88877766655", "let me in")
        (request,) = await app.peers.list_pairing("pending")
        assert request.code in code_reply and request.peer_id == "whatsapp:lid:88877766655"
        await app.peers.approve_pairing(request.code, by="cli")
        await gw.settle()
        stranger = "4915199988877"
        assert await exchange(gw, whatsapp, stranger, "hi", lid="88877766655@lid") == ["echo: hi"]
    async with app.store.read() as conn:
        linked = (
            await conn.execute(
                sa.select(peers.c.linked_to).where(peers.c.id == "whatsapp:lid:88877766655")
            )
        ).scalar()
    assert linked == f"whatsapp:{stranger}"


async def test_a_lid_strangers_pending_code_follows_it_to_the_phone_identity(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project(dmPolicy="pairing")
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        [code_reply] = await exchange(gw, whatsapp, "lid:88877766655", "let me in")
        (request,) = await app.peers.list_pairing("pending")
        assert request.code in code_reply
        # the same person, now with the phone number known: no second code, the request
        # is the phone identity's
        stranger = "4915199988877"
        assert await exchange(gw, whatsapp, stranger, "hello?", lid="88877766655@lid") == []
        (moved,) = await app.peers.list_pairing("pending")
        assert (moved.code, moved.peer_id) == (request.code, f"whatsapp:{stranger}")
    assert responder.calls == []
