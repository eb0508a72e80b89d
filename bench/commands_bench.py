"""Chat commands and peer access: what one command costs on a busy project.

Prints figures; not a test. A project with 2,000 tasks, 50 pending approvals
and 1,000 peers (100 linked pairs, 200 on the allowlist) in a real SQLite
file; each command is dispatched sequentially, then `/status` concurrently.

    .venv/bin/python bench/commands_bench.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from polpo.app import Polpo
from polpo.config import load_config
from polpo.gateway.commands import CommandContext, dispatch
from polpo.store.tables import allowlist, peers

OWNER = "whatsapp:39123456789"


class Session:
    async def reset(self) -> None:
        return None

    async def set_pending(self, pending: dict[str, Any] | None) -> None:
        return None


def ctx(app: Polpo) -> CommandContext:
    return CommandContext(
        app=app,
        peer_id=OWNER,
        channel="whatsapp",
        chat_id="39123456789@s.whatsapp.net",
        display_name="Owner",
        is_admin=True,
        now=app.clock.now(),
        session=Session(),
    )


async def populate(app: Polpo) -> None:
    for i in range(2000):
        t = await app.tasks.add(f"task {i}", agent="coder")
        if i < 50:
            async with app.ctx.tx() as tx:
                await app.tasks.transition(tx, t, "running")
            await app.approvals.request(t.id, gate="review", hook="task:complete")
    now = app.clock.now()
    async with app.store.write() as conn:
        rows = [
            {
                "id": f"whatsapp:39{100000000 + i}",
                "channel": "whatsapp",
                "display_name": f"peer {i}",
                "first_seen": now - i,
                "last_seen": now - i,
                "linked_to": None,
            }
            for i in range(900)
        ]
        rows += [
            {
                "id": f"telegram:{i}",
                "channel": "telegram",
                "display_name": None,
                "first_seen": now,
                "last_seen": now - 1000,
                "linked_to": f"whatsapp:39{100000000 + i}",
            }
            for i in range(100)
        ]
        await conn.execute(peers.insert(), rows)
        await conn.execute(
            allowlist.insert(),
            [
                {"peer_id": r["id"], "added_by": "cli", "added_at": now, "source": "cli"}
                for r in rows[:200]
            ],
        )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".polpo" / "polpo.json"
        path.parent.mkdir()
        config = {
            "project": "bench",
            "agents": [{"name": "coder"}],
            "settings": {
                "notifications": {
                    "channels": {
                        "whatsapp": {
                            "type": "whatsapp",
                            "gateway": {"dmPolicy": "allowlist", "allowFrom": ["+39123456789"]},
                        },
                        "telegram": {"type": "telegram", "gateway": {"dmPolicy": "pairing"}},
                    }
                }
            },
        }
        path.write_text(json.dumps(config))
        app = await Polpo.open(load_config(path))
        try:
            await populate(app)
            print("command            p50 ms   p99 ms   (sequential, 200 runs)")
            for text in (
                "/help",
                "/status",
                "/tasks",
                "/tasks running",
                "/missions",
                "/agents",
                "/approve",
                "/nope",
            ):
                samples = []
                for _ in range(200):
                    start = time.perf_counter()
                    await dispatch(ctx(app), text)
                    samples.append((time.perf_counter() - start) * 1000)
                samples.sort()
                print(f"{text:<16} {statistics.median(samples):8.2f} {samples[197]:8.2f}")

            n = 1000
            start = time.perf_counter()
            await asyncio.gather(*(dispatch(ctx(app), "/status") for _ in range(n)))
            elapsed = time.perf_counter() - start
            print(f"/status x{n} concurrently: {n / elapsed:,.0f} per second")

            samples = []
            for _ in range(20):
                start = time.perf_counter()
                listed = await app.peers.list()
                samples.append((time.perf_counter() - start) * 1000)
            print(f"peers.list() of {len(listed)} peers: p50 {statistics.median(samples):.1f} ms")
            samples = []
            for i in range(500):
                start = time.perf_counter()
                await app.peers.access(f"telegram:{i % 100}")
                samples.append((time.perf_counter() - start) * 1000)
            print(f"peers.access() of a linked peer: p50 {statistics.median(samples):.2f} ms")
        finally:
            await app.close()


if __name__ == "__main__":
    asyncio.run(main())
