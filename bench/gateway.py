"""Gateway throughput and latency through a MemoryChannel, on a real SQLite file (and PostgreSQL).

Three runs, each in a fresh process (so peak RSS is per run):

  (a) 1,000 peers × 10 ``/status``, concurrently
  (b) 1,000 peers × 10 free-text messages to the chat path (a stub model answering at once)
  (c) 1 peer × 2,000 sequential ``/status`` (each waits for its reply)

(a') and (c') repeat (a) and (c) with ``/help``, which reads nothing, to
separate what the pipeline costs from what ``/status`` itself costs.

Latency is from handing the message to the gateway (``on_message``) to the
reply reaching ``Channel.send``. Every run checks that each message got
exactly one reply, in order per peer, and that every inbox row is done.

    python bench/gateway.py            # all three
    python bench/gateway.py --run a    # one
    python bench/gateway.py --postgres postgresql://user@host:port/db
        # the same on PostgreSQL too (a throwaway database per run, created
        # and dropped through that admin URL), printed beside SQLite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

TARGETS = {"a": "≥ 6,000 msg/s", "b": "≥ 6,000 msg/s", "c": "p50 ≤ 0.25 ms, p99 ≤ 2 ms"}
RSS_TARGET = "RSS ≤ 100 MB"


async def run(kind: str, peers: int, per_peer: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from polpo.app import Polpo
    from polpo.channels.base import OutboundMessage
    from polpo.config import load_config
    from polpo.gateway.component import GatewayComponent
    from polpo.store.tables import inbox, outbox
    from polpo.testing import MemoryChannel, RecordingResponder

    root = Path(tempfile.mkdtemp(prefix="polpo-bench-"))
    (root / ".polpo").mkdir()
    (root / ".polpo" / "polpo.json").write_text(
        json.dumps(
            {
                "project": "bench",
                "settings": {
                    "notifications": {
                        "channels": {
                            "wa": {
                                "type": "whatsapp",
                                "gateway": {
                                    "enableInbound": True,
                                    "dmPolicy": "open",
                                    "rateLimitPerMinute": 0,
                                    "sendReadReceipts": True,
                                },
                            }
                        }
                    }
                },
            }
        )
    )
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    started: dict[str, deque[float]] = {}
    latencies: list[float] = []
    replies: dict[str, list[str]] = {}
    done = asyncio.Event()
    total = peers * per_peer
    last_send = [0.0]

    def on_send(message: OutboundMessage) -> None:
        now = time.perf_counter()
        latencies.append(now - started[message.chat_id].popleft())
        replies.setdefault(message.chat_id, []).append(message.text)
        last_send[0] = now
        if len(latencies) == total:
            done.set()

    responder = RecordingResponder(answer=lambda text: f"ok {text}")
    channel = MemoryChannel("whatsapp", on_send=on_send)
    component = GatewayComponent(app, [channel], responder=responder, pace_seconds=0)
    await component.start()
    text = os.environ.get("BENCH_TEXT") or (
        "/status" if kind in ("a", "c") else "hello, how are things going"
    )
    phones = [f"49151{n:07d}" for n in range(peers)]

    async def peer(phone: str) -> None:
        chat = f"{phone}@s.whatsapp.net"
        q = started.setdefault(chat, deque())
        for i in range(per_peer):
            m = channel.message(phone, f"{text} {i}" if kind == "b" else text)
            q.append(time.perf_counter())
            await channel.deliver(m)
            if kind == "c":
                while len(latencies) < i + 1:
                    await asyncio.sleep(0)
                    if len(latencies) < i + 1:
                        await asyncio.wait_for(_next_send(channel, i + 1), 10)

    t0 = time.perf_counter()
    await asyncio.gather(*(peer(p) for p in phones))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = last_send[0] - t0
    await component.settle()
    await component.stop()
    async with app.store.read() as conn:
        statuses = dict(
            (
                await conn.execute(
                    sa.select(inbox.c.status, sa.func.count()).group_by(inbox.c.status)
                )
            ).all()
        )
        sent = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "sent")
            )
        ).scalar()
    await app.close()
    lost_or_dup = [c for c, r in replies.items() if len(r) != per_peer]
    if kind == "b":
        out_of_order = [
            c for c, r in replies.items() if r != [f"ok {text} {i}" for i in range(per_peer)]
        ]
    else:
        out_of_order = []
    ok = (
        len(latencies) == total
        and not lost_or_dup
        and not out_of_order
        and statuses == {"done": total}
        and sent == total
        and len(replies) == peers
    )
    lat = sorted(latencies)
    return {
        "run": kind,
        "messages": total,
        "seconds": round(elapsed, 3),
        "throughput": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 3),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "transactions": component.batcher.transactions,
        "ok": ok,
        "inbox": statuses,
    }


async def _next_send(channel: Any, count: int) -> None:
    await channel.wait_sent(count)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", choices=["a", "b", "c"])
    parser.add_argument("--peers", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--postgres", metavar="ADMIN_URL", default=None)
    args = parser.parse_args()
    if args.run:
        peers = args.peers or (1 if args.run == "c" else 1000)
        per = args.messages or (2000 if args.run == "c" else 10)
        print(json.dumps(asyncio.run(run(args.run, peers, per))))
        return
    engines = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
    print(
        f"{'run':<48} {'engine':<10} {'msg/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'RSS MB':>7}"
        "  ok   target"
    )
    runs = [
        ("a", "/status", "(a) 1,000 peers x 10 /status, concurrent"),
        ("b", "", "(b) 1,000 peers x 10 chat, concurrent"),
        ("c", "/status", "(c) 1 peer x 2,000 /status, sequential"),
        # the same without /status's own database reads: what the pipeline itself costs
        ("a", "/help", "(a') 1,000 peers x 10 /help, concurrent"),
        ("c", "/help", "(c') 1 peer x 2,000 /help, sequential"),
    ]
    for kind, text, name in runs:
        for engine, admin in engines:
            env = {k: v for k, v in os.environ.items() if k != "POLPO_DATABASE_URL"}
            env["BENCH_TEXT"] = text
            database = _create_database(admin) if admin else None
            if database is not None:
                env["POLPO_DATABASE_URL"] = database[1]
            try:
                out = subprocess.run(
                    [sys.executable, __file__, "--run", kind],
                    capture_output=True,
                    text=True,
                    check=False,
                    env=env,
                )
            finally:
                if database is not None and admin is not None:
                    _drop_database(admin, database[0])
            if out.returncode != 0:
                print(f"{name} ({engine}): failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            target = (
                f"{TARGETS[kind]}, {RSS_TARGET}" if engine == "sqlite" and "'" not in name else ""
            )
            print(
                f"{name:<48} {engine:<10} {r['throughput']:>8} {r['p50_ms']:>9} {r['p99_ms']:>9} "
                f"{r['peak_rss_mb']:>7}  {'yes' if r['ok'] else 'NO ':<4} {target}"
            )


def _admin(admin_url: str, sql: str) -> None:
    import asyncpg
    import sqlalchemy as sa

    dsn = sa.engine.make_url(admin_url).set(drivername="postgresql")

    async def go() -> None:
        conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _create_database(admin_url: str) -> tuple[str, str]:
    """A throwaway database next to ``admin_url``'s: (its name, its URL)."""
    import secrets

    import sqlalchemy as sa

    name = f"polpo_bench_{secrets.token_hex(4)}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(admin_url).set(drivername="postgresql", database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
