"""Every chat command through ``dispatch``, on a real project database: the reply a user reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from polpo.app import Polpo
from polpo.channels.base import Button, ChannelStatus
from polpo.clock import FakeClock
from polpo.core.models import Approval
from polpo.gateway.commands import (
    COMMANDS,
    CommandContext,
    CommandReply,
    answer_pending,
    dispatch,
    help_text,
    parse_command,
)
from polpo.services.status import KEEP_SECONDS, write_channel_state
from polpo.store.tables import approvals, outbox
from tests.services.peers_helpers import (
    FRIEND,
    OWNER,
    TG_USER,
    loaded_for,
    open_project,
    pairing_request,
    seen,
)


class FakeSession:
    """The gateway's SessionOps, recorded."""

    def __init__(self) -> None:
        self.resets = 0
        self.pending: dict[str, Any] | None = None

    async def reset(self) -> None:
        self.resets += 1

    async def set_pending(self, pending: dict[str, Any] | None) -> None:
        self.pending = pending


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Polpo]:
    async with open_project(tmp_path / "proj", clock) as polpo:
        yield polpo


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


def context(
    app: Polpo,
    session: FakeSession,
    *,
    peer: str = OWNER,
    admin: bool = True,
    statuses: tuple[ChannelStatus, ...] = (),
) -> CommandContext:
    return CommandContext(
        app=app,
        peer_id=peer,
        channel=peer.split(":", 1)[0],
        chat_id=peer.split(":", 1)[1],
        display_name=None,
        is_admin=admin,
        now=app.clock.now(),
        session=session,
        channel_statuses=statuses,
    )


async def say(app: Polpo, session: FakeSession, text: str, **kw: Any) -> CommandReply:
    return await dispatch(context(app, session, **kw), text)


async def review_approval(app: Polpo, title: str = "Fix the login bug") -> Approval:
    task = await app.tasks.add(title, agent="coder")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, task, "running")
    return await app.approvals.request(task.id, gate="review", hook="task:complete")


# -- parsing ------------------------------------------------------------------------------


def test_parse_command_forms() -> None:
    assert parse_command("/Reject@polpobot  K7M2 too long") == ("reject", "K7M2 too long")
    assert parse_command("  /STATUS") == ("status", "")
    assert parse_command("\n/tasks   running \n") == ("tasks", "running")
    assert parse_command("/reject k7m2 line one\nline two") == ("reject", "k7m2 line one\nline two")
    assert parse_command("/usr/bin is broken") == ("usr/bin", "is broken")
    for not_a_command in ("hello /status", "/", "/ status", "/123", "//x", "", "   ", "📊 /status"):
        assert parse_command(not_a_command) is None, not_a_command


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_command_never_raises(text: str) -> None:
    parsed = parse_command(text)
    if parsed is not None:
        name, args = parsed
        assert name and name[0].isalpha() and name == name.lower()
        assert args == args.strip()
        assert text.lstrip().startswith("/")


NAMES = [*COMMANDS, "start", "Pair@bot", "x"]


def test_dispatch_never_raises(tmp_path: Path) -> None:
    """Every command with random arguments, admin or not, on one project: always a reply."""
    with asyncio.Runner() as runner:
        app = runner.run(Polpo.open(loaded_for(tmp_path / "proj"), clock=FakeClock()))
        runner.run(review_approval(app))

        @settings(max_examples=150, deadline=None)
        @given(
            name=st.sampled_from(NAMES),
            args=st.one_of(
                st.text(max_size=200),
                st.sampled_from(["abcd", "ABCD2345", "k7m2 reason", "all", "running", "-", "`*_["]),
            ),
            admin=st.booleans(),
        )
        def check(name: str, args: str, admin: bool) -> None:
            for text in (f"/{name} {args}", "/" + args):
                reply = runner.run(dispatch(context(app, FakeSession(), admin=admin), text))
                assert isinstance(reply.text, str) and reply.text
                assert "failed on my side" not in reply.text

        try:
            check()
        finally:
            runner.run(app.close())


# -- help, unknown, admin ---------------------------------------------------------------------


async def test_help_lists_every_command_and_start_is_an_alias(
    app: Polpo, session: FakeSession
) -> None:
    reply = await say(app, session, "/help")
    for c in COMMANDS.values():
        assert c.help in reply.text
    assert "/pair CODE" in reply.text
    assert (await say(app, session, "/start@polpobot")).text == reply.text
    assert (await say(app, session, "/HELP")).text == reply.text
    # a non-admin is not offered /pair
    assert "/pair" not in (await say(app, session, "/help", admin=False)).text
    assert help_text(False) != help_text(True)


async def test_unknown_command(app: Polpo, session: FakeSession) -> None:
    assert (
        await say(app, session, "/frobnicate now")
    ).text == "Unknown command /frobnicate. Send /help."
    long = await say(app, session, "/" + "x" * 500)
    assert long.text.startswith("Unknown command /xxxx") and len(long.text) < 80


# -- status, tasks, missions, agents ----------------------------------------------------------


async def test_status(app: Polpo, session: FakeSession, clock: FakeClock) -> None:
    await app.tasks.add("one", agent="coder")
    await app.tasks.add("two", agent="writer")
    running = await app.tasks.add("three", agent="coder")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, running, "running")
    await review_approval(app)
    await seen(app, OWNER, "Owner")
    await seen(app, FRIEND, "Old", ago=600)
    await write_channel_state(app.ctx, "telegram", "disconnected", "network down")

    live = (ChannelStatus("whatsapp", "connected", account="39123456789"),)
    text = (await say(app, session, "/status", statuses=live)).text
    assert "**demo**" in text
    assert "Tasks: 2 pending, 1 awaiting approval, 1 running" in text
    assert "Agents: 1 active, 1 idle (coder)" in text
    assert "Approvals pending: 1 — send /approve" in text
    assert "Peers seen (last 5 min): 1 — +39123456789" in text
    assert "✅ whatsapp: connected" in text
    assert "⚠️ telegram: disconnected (network down)" in text

    # without live statuses the durable table speaks; a configured channel never seen: not running
    await write_channel_state(app.ctx, "telegram", "connected")
    text = (await say(app, session, "/status")).text
    assert "✅ telegram: connected" in text and "⚠️ whatsapp: not running" in text


async def test_status_counts_every_recent_peer_and_names_the_newest_five(
    app: Polpo, session: FakeSession
) -> None:
    for i in range(7):
        await seen(app, f"telegram:{100 + i}", ago=60 - i)
    await seen(app, "telegram:99", ago=600)
    text = (await say(app, session, "/status")).text
    newest = ", ".join(f"telegram:{106 - i}" for i in range(5))
    assert f"Peers seen (last 5 min): 7 — {newest} …" in text
    assert (await app.status()).connected_count == 7


async def test_status_follows_changes_here_at_once_and_elsewhere_within_seconds(
    app: Polpo, session: FakeSession, clock: FakeClock, tmp_path: Path
) -> None:
    assert "Tasks: none yet" in (await say(app, session, "/status")).text
    await app.tasks.add("one")
    assert "Tasks: 1 pending" in (await say(app, session, "/status")).text
    # another process (its own Polpo on the same database) writes a channel state and
    # sees a peer: no event, no sighting of this process
    async with open_project(tmp_path / "proj", clock) as other:
        await write_channel_state(other.ctx, "telegram", "disconnected", "network down")
        await seen(other, "telegram:77")
    clock.advance(KEEP_SECONDS + 0.5)
    text = (await say(app, session, "/status")).text
    assert "telegram: disconnected (network down)" in text
    assert "Peers seen (last 5 min): 1 — telegram:77" in text


async def test_status_of_an_empty_project(app: Polpo, session: FakeSession) -> None:
    text = (await say(app, session, "/status")).text
    assert "Tasks: none yet" in text and "Approvals pending: 0" in text
    assert "Peers seen (last 5 min): 0" in text


async def test_tasks_newest_first_capped_with_more(
    app: Polpo, session: FakeSession, clock: FakeClock
) -> None:
    created = []
    for i in range(23):
        created.append(await app.tasks.add(f"Task number {i}", agent="coder"))
        clock.advance(1)
    text = (await say(app, session, "/tasks")).text
    lines = text.splitlines()
    assert lines[1] == f"⏳ `{created[22].short_id}` Task number 22 — coder"
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "…and 3 more"

    await app.tasks.cancel(created[0].short_id)
    text = (await say(app, session, "/tasks cancelled")).text
    assert text.splitlines()[1:] == [f"🚫 `{created[0].short_id}` Task number 0 — coder"]
    assert (await say(app, session, "/tasks failed")).text == "No failed tasks."
    assert "Unknown status “bogus”" in (await say(app, session, "/tasks bogus")).text


async def test_tasks_empty_and_markdown_in_titles(app: Polpo, session: FakeSession) -> None:
    assert (await say(app, session, "/tasks")).text.startswith("No tasks yet")
    await app.tasks.add("use *stars* and `ticks`")
    text = (await say(app, session, "/tasks")).text
    assert "use \\*stars\\* and \\`ticks\\`" in text


async def test_missions(app: Polpo, session: FakeSession) -> None:
    assert (await say(app, session, "/missions")).text == "No missions yet."
    m = await app.missions.add("Ship v2", plan=[])
    text = (await say(app, session, "/missions")).text
    assert f"📝 **Ship v2** — draft, 0/0 done · `{m.short_id}`" in text


async def test_agents(app: Polpo, session: FakeSession) -> None:
    task = await app.tasks.add("Refactor", agent="coder")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, task, "running")
    text = (await say(app, session, "/agents")).text
    assert f"🔄 **coder** — active: `{task.short_id}` Refactor" in text
    assert "💤 **writer** — idle" in text


# -- approvals ---------------------------------------------------------------------------------


async def test_approve_lists_pending_with_buttons(
    app: Polpo, session: FakeSession, clock: FakeClock
) -> None:
    assert (await say(app, session, "/approve")).text == "No pending approvals."
    a = await review_approval(app)
    clock.advance(300)
    reply = await say(app, session, "/approve")
    assert (
        f"✋ `{a.short_id}` — task `{a.task_short_id}` Fix the login bug · coder · gate review · 5 min ago"
        in reply.text
    )
    assert Button(f"✅ Approve {a.short_id}", f"/approve {a.short_id}") in reply.buttons
    assert Button(f"❌ Reject {a.short_id}", f"/reject {a.short_id}") in reply.buttons


async def test_approve_id_then_already_decided(
    app: Polpo, session: FakeSession, clock: FakeClock
) -> None:
    await seen(app, OWNER, "Mario")
    a = await review_approval(app)
    reply = await say(app, session, f"/approve {a.short_id.upper()}")
    assert (
        reply.text
        == f"✅ Approved `{a.short_id}` (review): task `{a.task_short_id}` Fix the login bug is now done."
    )
    assert (await app.approvals.get(a.id)).resolved_by == OWNER
    clock.advance(120)
    again = await say(app, session, f"/approve {a.short_id}")
    assert again.text == f"`{a.short_id}` was already approved by Mario (+39123456789), 2 min ago."


async def test_unknown_and_ambiguous_ids(app: Polpo, session: FakeSession) -> None:
    assert (await say(app, session, "/approve zzzz")).text == "No approval matches 'zzzz'"
    assert "at least 4" in (await say(app, session, "/approve ab")).text
    first = await review_approval(app, "First")
    second = await review_approval(app, "Second")
    async with app.store.write() as conn:
        for a, full, short in (
            (first, "abcd2222aaaaaaaa", "abcd2"),
            (second, "abcd3333aaaaaaaa", "abcd3"),
        ):
            await conn.execute(
                approvals.update().where(approvals.c.id == a.id).values(id=full, short_id=short)
            )
    text = (await say(app, session, "/approve abcd")).text
    assert text.splitlines() == [
        "`abcd` matches several approvals:",
        "• `abcd2` First (pending)",
        "• `abcd3` Second (pending)",
        "Send /approve again with one of these ids.",
    ]
    assert "matches several" in (await say(app, session, "/reject abcd")).text
    assert "matches several" in (await say(app, session, "/reject abcd too slow")).text


async def test_reject_with_reason(app: Polpo, session: FakeSession) -> None:
    a = await review_approval(app)
    reply = await say(app, session, f"/reject {a.short_id} please add tests")
    assert reply.text == (
        f"❌ Rejected `{a.short_id}` (review): task `{a.task_short_id}` Fix the login bug "
        "goes back to coder with your feedback (revision 1)."
    )
    task = await app.tasks.get(a.task_id)
    assert task.feedback[-1]["feedback"] == "please add tests"
    assert "already rejected" in (await say(app, session, f"/reject {a.short_id} again")).text
    assert (await say(app, session, "/reject")).text.startswith("Usage: /reject ID reason")


async def test_reject_without_reason_asks_and_takes_the_next_message(
    app: Polpo, session: FakeSession, clock: FakeClock
) -> None:
    a = await review_approval(app)
    ask = await say(app, session, f"/reject {a.short_id}")
    assert ask.text.startswith(
        f"Why reject `{a.short_id}` (task `{a.task_short_id}` Fix the login bug)?"
    )
    assert session.pending == {
        "kind": "reject_reason",
        "approval": a.id,
        "expires_at": clock.now() + 600,
    }
    assert (await app.approvals.get(a.id)).status == "pending"

    clock.advance(300)
    reply = await answer_pending(context(app, session), session.pending, "the tests are missing")
    assert reply is not None and reply.text.startswith(f"❌ Rejected `{a.short_id}`")
    decided = await app.approvals.get(a.id)
    assert (decided.status, decided.feedback) == ("rejected", "the tests are missing")


async def test_pending_reason_expires_after_ten_minutes(
    app: Polpo, session: FakeSession, clock: FakeClock
) -> None:
    a = await review_approval(app)
    await say(app, session, f"/reject {a.short_id}")
    assert session.pending is not None
    clock.advance(600)
    assert await answer_pending(context(app, session), session.pending, "late reason") is None
    assert (await app.approvals.get(a.id)).status == "pending"
    assert await answer_pending(context(app, session), {"kind": "other"}, "x") is None


async def test_a_too_long_reason_is_asked_again(app: Polpo, session: FakeSession) -> None:
    a = await review_approval(app)
    await say(app, session, f"/reject {a.short_id}")
    pending = session.pending
    assert pending is not None
    session.pending = None  # the gateway clears it before answering
    reply = await answer_pending(context(app, session), pending, "x" * 5000)
    assert reply is not None and "at most 4000 characters" in reply.text
    assert reply.text.endswith("Send the reason again.")
    assert session.pending == pending
    assert (await app.approvals.get(a.id)).status == "pending"


async def test_names_in_errors_cannot_become_markup(app: Polpo, session: FakeSession) -> None:
    await pairing_request(app, "AAAABBBB", TG_USER, "*Bob*")
    await app.peers.approve_pairing("AAAABBBB", by="cli")
    reply = await say(app, session, "/pair AAAABBBB")
    assert "\\*Bob\\* (telegram:4242)" in reply.text


async def test_pending_reason_for_an_approval_decided_meanwhile(
    app: Polpo, session: FakeSession
) -> None:
    a = await review_approval(app)
    await say(app, session, f"/reject {a.short_id}")
    assert session.pending is not None
    await app.approvals.approve(a.id, by="cli")
    reply = await answer_pending(context(app, session), session.pending, "too late")
    assert (
        reply is not None
        and reply.text == f"`{a.short_id}` was already approved by the CLI, just now."
    )


# -- session, pairing, linking --------------------------------------------------------------------


async def test_new_resets_the_session(app: Polpo, session: FakeSession) -> None:
    reply = await say(app, session, "/new")
    assert session.resets == 1 and "New conversation" in reply.text


async def test_pair_is_admin_only(app: Polpo, session: FakeSession) -> None:
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob")
    reply = await say(app, session, "/pair K7M2XPG9", peer=FRIEND, admin=False)
    assert reply.text == "Only an admin can use /pair."
    assert not (await app.peers.access(TG_USER)).allowed


async def test_pair_approves_and_the_requester_is_told(app: Polpo, session: FakeSession) -> None:
    await pairing_request(app, "K7M2XPG9", TG_USER, "Bob", chat_id="4242")
    listing = (await say(app, session, "/pair")).text
    assert "`K7M2XPG9` — Bob (telegram:4242) on telegram, just now" in listing
    reply = await say(app, session, "/pair k7m2 xpg9")
    assert reply.text == "✅ Added Bob (telegram:4242) on telegram. They've been told they're in."
    assert (await app.peers.access(TG_USER)).allowed
    async with app.store.read() as conn:
        (row,) = (await conn.execute(sa.select(outbox.c.chat_id, outbox.c.text))).all()
    assert row.chat_id == "4242" and "You're in" in row.text
    assert (await say(app, session, "/pair K7M2XPG9")).text.startswith(
        "Code K7M2XPG9 was already used"
    )


async def test_pair_wrong_codes_lock_out(app: Polpo, session: FakeSession) -> None:
    for _ in range(4):
        assert (await say(app, session, "/pair NOPE2222")).text.startswith(
            "No pairing request has code NOPE2222"
        )
    fifth = (await say(app, session, "/pair NOPE2222")).text
    assert "Too many wrong codes: /pair is locked for you until" in fifth
    assert (await say(app, session, "/pair NOPE2222")).text.startswith("Too many wrong codes")


async def test_link_across_channels(app: Polpo, session: FakeSession) -> None:
    await seen(app, OWNER)
    await seen(app, TG_USER)
    first = await say(app, session, "/link")
    code = first.text.split("`")[1]
    assert f"send: /link {code}" in first.text
    reply = await say(app, session, f"/link {code.lower()}", peer=TG_USER, admin=False)
    assert (
        reply.text
        == "🔗 Linked with +39123456789. One conversation and one access for all of them."
    )
    assert await app.peers.canonical(TG_USER) == OWNER
    assert (
        await say(app, session, f"/link {code}", peer=TG_USER)
    ).text == f"Link code {code} was already used."
    assert (await say(app, session, "/link NOPE2345", peer=TG_USER)).text.startswith(
        "No link code NOPE2345"
    )


# -- robustness -----------------------------------------------------------------------------------


async def test_an_unexpected_failure_is_an_apology(
    app: Polpo, session: FakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(**_: Any) -> None:
        raise RuntimeError("db on fire")

    monkeypatch.setattr(app.tasks, "list", boom)
    reply = await say(app, session, "/tasks")
    assert reply.text == "Sorry, /tasks failed on my side. Please try again."


async def test_concurrent_status_commands_all_answer(app: Polpo) -> None:
    await app.tasks.add("one")
    replies = await asyncio.gather(*(say(app, FakeSession(), "/status") for _ in range(30)))
    assert all("Tasks: 1 pending" in r.text for r in replies)
