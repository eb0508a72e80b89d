"""Storage is bounded: ``polpo serve``'s retention job prunes what is done with.

Rows made by the real gateway and notifier on a real SQLite file, the clock
moved past ``settings.storage.retentionDays``, the job run once: finished
inbox rows, sent outbox rows (and their parts) and passed events go; what
is still in use stays, and ids never go backwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.notifications import Notifier
from polpo.retention import RetentionJob
from polpo.serve import ServeOptions, build_serve_host
from polpo.store.tables import events, inbox, outbox, outbox_parts, pairing_requests
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

OWNER = "39123456789"
DAY = 86400.0


async def _open(tmp_path: Path, clock: FakeClock, **storage: Any) -> Polpo:
    config: dict[str, Any] = {
        "project": "bounded",
        "settings": {
            "runner": {"enabled": False},
            "storage": {"url": "sqlite:///.polpo/polpo.db", **storage},
            "notifications": {
                "channels": {
                    "wa": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "pairing",
                            "allowFrom": [f"+{OWNER}"],
                        },
                    }
                }
            },
        },
    }
    path = tmp_path / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return await Polpo.open(load_config(path), clock=clock)


async def _count(app: Polpo, table: sa.Table) -> int:
    async with app.store.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _max_id(app: Polpo, table: sa.Table) -> int:
    async with app.store.read() as conn:
        return int((await conn.execute(sa.select(sa.func.max(table.c.id)))).scalar_one())


async def test_old_finished_rows_go_and_what_is_in_use_stays(tmp_path: Path) -> None:
    clock = FakeClock()
    app = await _open(tmp_path, clock, retentionDays=7)
    try:
        wa = MemoryChannel("whatsapp", clock=clock)
        notifier = Notifier(app)
        async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
            for n in range(5):
                assert await exchange(gw, wa, OWNER, f"hello {n}") == [f"echo: hello {n}"]
            await exchange(gw, wa, "4915100000001", "let me in")  # a stranger: pairing code
            await notifier.process()  # the pairing alert: an event, passed by the cursor
            await gw.settle()
            async with app.ctx.tx() as tx:  # an event the notifier has not passed yet
                await tx.emit("task:created", {"taskId": "x", "shortId": "x", "title": "t"})
            clock.advance(8 * DAY)
            # recent: a reply still pending (the channel is down) and a fresh message
            await wa.disconnect()
            await wa.receive(OWNER, "are you there?")
            await gw.gateway.wait_idle(5)
            async with app.ctx.tx() as tx:
                await tx.emit("task:done", {"taskId": "x", "shortId": "x", "title": "t"})

            inbox_max, outbox_max = await _max_id(app, inbox), await _max_id(app, outbox)
            before = {t.name: await _count(app, t) for t in (inbox, outbox, outbox_parts, events)}
            pruned = await RetentionJob(app).run_once()

            after = {t.name: await _count(app, t) for t in (inbox, outbox, outbox_parts, events)}
            # the 6 old inbox rows and the 5 replies + pairing answer + alert went, parts too
            assert pruned.counts["inbox"] == 6 and after["inbox"] == before["inbox"] - 6
            assert pruned.counts["outbox"] == 7 and after["outbox"] == 1
            assert after["outbox_parts"] == 0
            assert pruned.counts["events"] == 1  # the pairing request the notifier passed
            # the pending reply stays and still goes out; ids keep growing
            await wa.reconnect()
            await gw.settle()
            assert wa.sent[-1].text == "echo: are you there?"
            assert (
                await _max_id(app, inbox) == inbox_max and await _max_id(app, outbox) >= outbox_max
            )
            await wa.receive(OWNER, "one more")
            await gw.settle()
            assert await _max_id(app, inbox) == inbox_max + 1
            # the old event the notifier has not passed is still there for it
            async with app.store.read() as conn:
                types = [r[0] for r in await conn.execute(sa.select(events.c.type))]
            assert "task:created" in types and "peer:pairing_requested" not in types
            # the stranger's expired request (past its 24 h cool-down) is gone too
            assert await _count(app, pairing_requests) == 0
    finally:
        await app.close()


async def test_nothing_recent_is_pruned_and_serve_runs_the_job(tmp_path: Path) -> None:
    clock = FakeClock()
    app = await _open(tmp_path, clock)  # default: 30 days
    try:
        assert app.config.settings.storage.retention_days == 30
        wa = MemoryChannel("whatsapp", clock=clock)
        async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
            await exchange(gw, wa, OWNER, "hi")
            clock.advance(29 * DAY)
            assert (await RetentionJob(app).run_once()).total == 0
        host = await build_serve_host(app, ServeOptions(port=0))
        assert isinstance(host.registry["retention"], RetentionJob)
        assert host.registry["retention"] in host.components
    finally:
        await app.close()


async def test_fetched_voice_notes_and_pictures_go_with_the_retention(tmp_path: Path) -> None:
    import os

    from polpo.channels.base import Attachment

    clock = FakeClock()
    app = await _open(tmp_path, clock, retentionDays=7)
    try:
        wa = MemoryChannel("whatsapp", clock=clock)
        async with running_gateway(app, wa, responder=RecordingResponder()) as gw:
            # a picture fetched into .polpo/media/ as the gateway does for a turn
            photo = wa.file_message(OWNER, b"\xff\xd8old", Attachment("image", "image/jpeg", 5))
            old = await wa.fetch_attachment(photo, app.loaded.polpo_dir / "media", max_bytes=99)
            await gw.settle()
        media = old.parent
        assert media == tmp_path / ".polpo" / "media"
        assert media.stat().st_mode & 0o777 == 0o700 and old.stat().st_mode & 0o777 == 0o600
        os.utime(old, (clock.now() - 8 * DAY, clock.now() - 8 * DAY))
        recent = media / "whatsapp-recent.ogg"
        recent.write_bytes(b"OggS")
        os.utime(recent, (clock.now() - 6 * DAY, clock.now() - 6 * DAY))
        elsewhere = tmp_path / "keep.txt"
        elsewhere.write_text("not media")
        os.utime(elsewhere, (clock.now() - 90 * DAY, clock.now() - 90 * DAY))
        (media / "link").symlink_to(elsewhere)
        os.utime(media / "link", (0, 0), follow_symlinks=False)

        pruned = await RetentionJob(app).run_once()

        assert pruned.counts["media files"] == 1
        assert not old.exists() and recent.exists()
        assert elsewhere.exists()  # a link in the folder is never followed
    finally:
        await app.close()
