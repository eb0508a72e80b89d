"""Alerts: events → rules → outbox rows, once each, including after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.notifications import Notifier, add_notifications
from polpo.serve import EventTailComponent, ServeOptions, build_serve_host
from polpo.store.tables import notification_cursor, outbox
from tests.runner.conftest import write_config

CHANNELS = {
    "telegram": {"type": "telegram", "gateway": {"allowFrom": ["123", "456"]}},
    "whatsapp": {"type": "whatsapp", "gateway": {"allowFrom": ["+39 123 456 789", "*"]}},
}
ADMINS = ["telegram:123", "telegram:456", "whatsapp:39123456789"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "proj"


async def open_app(root: Path, clock: FakeClock, **notifications: Any) -> Polpo:
    path = write_config(
        root,
        notifications={"channels": CHANNELS, **notifications},
        approvalGates=[{"name": "review", "hook": "task:complete", "agents": ["coder"]}],
    )
    return await Polpo.open(load_config(path), clock=clock)


@pytest.fixture
async def app(root: Path, clock: FakeClock) -> AsyncIterator[Polpo]:
    a = await open_app(root, clock)
    yield a
    await a.close()


async def outbox_rows(app: Polpo) -> list[Any]:
    async with app.store.read() as conn:
        return list((await conn.execute(sa.select(outbox).order_by(outbox.c.id))).all())


async def request_approval(app: Polpo) -> Any:
    task = await app.tasks.add("Write the parser", agent="coder")
    return await app.approvals.request(
        task.id, gate="review", hook="task:complete", summary="Parser written, 12 tests"
    )


async def test_an_approval_request_reaches_every_admin_with_short_id_and_buttons(
    app: Polpo,
) -> None:
    notifier = Notifier(app)
    approval = await request_approval(app)
    app.outbox_ready.clear()

    assert await notifier.process() == 3

    assert app.outbox_ready.is_set()
    rows = await outbox_rows(app)
    assert [r.peer_id for r in rows] == ADMINS
    assert [(r.channel, r.chat_id) for r in rows] == [
        ("telegram", "123"),
        ("telegram", "456"),
        ("whatsapp", "39123456789@s.whatsapp.net"),
    ]
    short = approval.short_id
    for r in rows:
        assert f"`/approve {short}`" in r.text and f"`/reject {short} reason`" in r.text
        assert "Write the parser" in r.text and "Parser written, 12 tests" in r.text
        assert r.buttons == [
            {"label": "Approve", "command": f"/approve {short}"},
            {"label": "Reject", "command": f"/reject {short}"},
        ]
        assert r.ref == f"approval:{approval.id}"
        assert r.status == "pending" and r.owner is None
    assert {r.dedupe_key for r in rows} == {f"event:{_event_id(rows[0])}:{p}" for p in ADMINS}


def _event_id(row: Any) -> str:
    return str(row.dedupe_key.split(":")[1])


async def test_a_replay_never_enqueues_twice(app: Polpo) -> None:
    notifier = Notifier(app)
    await request_approval(app)
    await notifier.process()
    async with app.store.write() as conn:  # as if the cursor had been lost
        await conn.execute(sa.delete(notification_cursor))
    assert await Notifier(app).process() == 0
    assert len(await outbox_rows(app)) == 3


async def test_events_while_serve_was_down_are_sent_on_start_unless_stale(
    root: Path, clock: FakeClock
) -> None:
    app = await open_app(root, clock)
    try:
        notifier = Notifier(app)
        old = await app.tasks.add("Old", agent="coder")
        await app.tasks.cancel(old.id)
        await notifier.process()  # the cursor is past these
        await app.close()

        # serve is down; a CLI process fails a task now and another long ago
        cli = await open_app(root, clock)
        stale = await cli.tasks.add("Stale", agent="coder")
        async with cli.ctx.tx() as tx:
            t = await cli.tasks.get(stale.id)
            await cli.tasks.transition(tx, t, "failed", error="boom long ago")
        clock.advance(25 * 3600)
        fresh = await cli.tasks.add("Fresh", agent="coder")
        async with cli.ctx.tx() as tx:
            t = await cli.tasks.get(fresh.id)
            await cli.tasks.transition(tx, t, "failed", error="boom just now")
        await cli.close()

        app = await open_app(root, clock)
        notifier = Notifier(app)
        await notifier.start()  # catches up at once
        await asyncio.wait_for(app.outbox_ready.wait(), 10)
        await notifier.stop()
        rows = await outbox_rows(app)
        assert len(rows) == 3
        assert all("Fresh" in r.text and "boom just now" in r.text for r in rows)
        assert all(f"`polpo task retry {fresh.short_id}`" in r.text for r in rows)
    finally:
        await app.close()


async def test_rules_route_by_glob_to_given_peers_and_override_the_default(
    root: Path, clock: FakeClock
) -> None:
    app = await open_app(
        root,
        clock,
        rules=[
            {
                "events": ["task:*"],
                "channels": ["telegram"],
                "to": ["telegram:999", "whatsapp:+39 111 222 333"],
            },
            {"events": ["mission:c*"], "channels": ["whatsapp"]},
        ],
    )
    try:
        notifier = Notifier(app)
        task = await app.tasks.add("Ship", agent="coder")  # task:created → telegram:999 only
        async with app.ctx.tx() as tx:  # task:failed → the rule, not the admins
            await app.tasks.transition(tx, await app.tasks.get(task.id), "failed", error="x")
        await request_approval(app)  # no rule matches: the default, every admin
        await notifier.process()
        rows = await outbox_rows(app)
        assert [r.peer_id for r in rows if "Ship" in r.text] == ["telegram:999", "telegram:999"]
        assert [r.peer_id for r in rows if "Approval needed" in r.text] == ADMINS
        # a mission completing: the rule without "to" goes to that channel's admins
        from polpo.services.missions import PlannedTask

        m = await app.missions.add("M", plan=[PlannedTask("one", agent="writer")], activate=True)
        (only,) = await app.missions.tasks_of(m.id)
        async with app.ctx.tx() as tx:
            await app.tasks.transition(tx, only, "running")
        async with app.ctx.tx() as tx:
            await app.tasks.transition(tx, await app.tasks.get(only.id), "done")
        await notifier.process()
        done = [r for r in await outbox_rows(app) if "Mission completed" in r.text]
        assert [r.peer_id for r in done] == ["whatsapp:39123456789"]
        assert f"`{m.short_id}`" in done[0].text and "(1/1 tasks done)" in done[0].text
    finally:
        await app.close()


async def test_a_disconnected_channel_is_announced_on_the_others(app: Polpo) -> None:
    notifier = Notifier(app)
    async with app.ctx.tx() as tx:
        await tx.emit(
            "channel:disconnected",
            {"channel": "whatsapp", "state": "logged_out", "detail": "unlinked from the phone"},
        )
    await notifier.process()
    rows = await outbox_rows(app)
    assert [r.peer_id for r in rows] == ["telegram:123", "telegram:456"]
    assert "whatsapp logged_out" in rows[0].text and "unlinked from the phone" in rows[0].text


async def test_pairing_requests_reach_the_admins_with_the_pair_command(app: Polpo) -> None:
    notifier = Notifier(app)
    async with app.ctx.tx() as tx:
        await tx.emit(
            "peer:pairing_requested",
            {
                "peerId": "telegram:777",
                "displayName": "Ann",
                "code": "ABCD2345",
                "channel": "telegram",
            },
        )
    await notifier.process()
    rows = await outbox_rows(app)
    assert [r.peer_id for r in rows] == ADMINS
    assert "Ann" in rows[0].text and "`/pair ABCD2345`" in rows[0].text
    assert rows[0].buttons == [{"label": "Approve", "command": "/pair ABCD2345"}]


async def test_quiet_events_without_a_rule_send_nothing(app: Polpo) -> None:
    notifier = Notifier(app)
    await app.tasks.add("Quiet", agent="coder")
    assert await notifier.process() == 0
    assert await outbox_rows(app) == []


async def test_channels_given_in_code_get_alerts_too(app: Polpo) -> None:
    from polpo.config import TelegramChannelConfig

    memory_like = TelegramChannelConfig.model_validate(
        {"type": "telegram", "gateway": {"admins": ["telegram:42"]}}
    )
    notifier = Notifier(app, channels={"telegram": memory_like})
    await request_approval(app)
    await notifier.process()
    assert [r.peer_id for r in await outbox_rows(app)] == ["telegram:42", "whatsapp:39123456789"]


async def test_serve_alerts_for_events_written_by_another_process(
    root: Path, clock: FakeClock
) -> None:
    app = await open_app(root, clock)
    other = await open_app(root, clock)
    other.ctx.origin = "another process"
    host = await build_serve_host(app, ServeOptions(port=0))
    names = [c.name for c in host.components]
    assert names.index("event-tail") < names.index("runner") < names.index("notifications")
    tail = next(c for c in host.components if isinstance(c, EventTailComponent))
    notifier = host.registry["notifier"]
    try:
        notifier.poll_seconds = 60  # only the bus (fed by the tail) can wake it in time
        await tail.start()
        await notifier.start()
        app.outbox_ready.clear()
        approval = await request_approval(other)  # e.g. `polpo run` hitting a gate
        await asyncio.wait_for(app.outbox_ready.wait(), 10)
        rows = await outbox_rows(app)
        assert len(rows) == 3 and all(f"/approve {approval.short_id}" in r.text for r in rows)
    finally:
        await notifier.stop()
        await tail.stop()
        await other.close()
        await app.close()


async def test_add_notifications_registers_one_component(app: Polpo) -> None:
    from polpo.host import Host

    host = Host(app)
    add_notifications(host)
    assert [c.name for c in host.components] == ["notifications"]


async def test_a_request_answered_before_its_alert_went_out_is_not_announced(app: Polpo) -> None:
    notifier = Notifier(app)
    approval = await request_approval(app)
    await app.approvals.approve(approval.id, by="cli")  # decided while serve was down
    assert await notifier.process() == 0
    assert await outbox_rows(app) == []


async def test_no_runner_in_serve_when_disabled(root: Path, clock: FakeClock) -> None:
    path = write_config(root, runner={"enabled": False})
    app = await Polpo.open(load_config(path), clock=clock)
    try:
        host = await build_serve_host(app, ServeOptions(port=0))
        assert "runner" not in [c.name for c in host.components]
    finally:
        await app.close()
