"""Pairing and linking with ``polpo serve`` running, as people would do it.

The real serve host (gateway with its outbox dispatcher, notifications, API)
runs against a project on disk; a ``MemoryChannel`` plays Telegram. A
stranger gets a code; the admin approves it from chat (``/pair``) or from a
separate ``polpo pair approve`` process, and the running server tells the
stranger they are in.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from polpo.app import Polpo
from polpo.config import load_config
from polpo.host import Host
from polpo.serve import ServeOptions, build_serve_host
from polpo.testing import MemoryChannel
from tests.cli.conftest import polpo_exe, subprocess_env

ADMIN = "42"


@dataclass
class Served:
    app: Polpo
    host: Host
    telegram: MemoryChannel
    root: Path


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config = {
        "project": "pairing",
        "settings": {
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "pairing",
                            "allowFrom": [ADMIN],
                        },
                    }
                }
            }
        },
    }
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config), encoding="utf-8")
    telegram = MemoryChannel("telegram")
    monkeypatch.setattr("polpo.channels.factory.build_channels", lambda app: [telegram])
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    host = await build_serve_host(app, ServeOptions(port=0))
    await host.start()
    try:
        yield Served(app, host, telegram, root)
    finally:
        await host.stop()
        await app.close()


async def wait_text(served: Served, chat: str, needle: str, since: int = 0) -> str:
    """The first message sent to ``chat`` after index ``since`` that contains ``needle``."""
    async with asyncio.timeout(15):
        seen = since
        while True:
            sent = await served.telegram.wait_sent(seen + 1, within=15)
            for s in sent[since:]:
                if s.chat_id == chat and needle in s.text:
                    return s.text
            seen = len(sent)


async def pairing_code(served: Served, peer: str) -> str:
    before = len(served.telegram.sent)
    await served.telegram.receive(peer, "hello?")
    text = await wait_text(served, peer, "/pair ", before)
    found = re.search(r"/pair ([A-Z2-9]{8})", text)
    assert found, text
    return found.group(1)


async def polpo_cli(root: Path, *args: str) -> tuple[int, str, str]:
    """A separate ``polpo`` process, without blocking the server's event loop."""
    proc = await asyncio.create_subprocess_exec(
        *polpo_exe(),
        *args,
        cwd=root,
        env=subprocess_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_admin_pairs_from_chat_and_the_stranger_is_told(served: Served) -> None:
    code = await pairing_code(served, "777")
    before = len(served.telegram.sent)
    await served.telegram.receive(ADMIN, f"/pair {code.lower()}")
    await wait_text(served, ADMIN, "Added telegram:777 on telegram", before)
    await wait_text(served, "777", "You're in", before)

    before = len(served.telegram.sent)
    await served.telegram.receive("777", "/status")
    assert "Tasks: none yet" in await wait_text(served, "777", "pairing", before)


async def test_pair_approve_from_another_process_is_delivered_by_serve(served: Served) -> None:
    code = await pairing_code(served, "888")
    before = len(served.telegram.sent)
    code_, out, err = await polpo_cli(served.root, "pair", "approve", code)
    assert code_ == 0, err
    assert "Added telegram:888" in out
    await wait_text(served, "888", "You're in", before)  # sent by the running server
    before = len(served.telegram.sent)
    await served.telegram.receive("888", "/help")
    helped = await wait_text(served, "888", "/status", before)
    assert "/approve" not in helped  # a paired peer chats and reads; admins decide


async def test_a_non_admin_cannot_pair_and_linking_shares_the_admin_access(served: Served) -> None:
    code = await pairing_code(served, "999")
    before = len(served.telegram.sent)
    await served.telegram.receive(ADMIN, f"/pair {code}")
    await wait_text(served, "999", "You're in", before)

    before = len(served.telegram.sent)
    await served.telegram.receive("999", f"/pair {code}")
    await wait_text(served, "999", "Only an admin can use /pair.", before)

    before = len(served.telegram.sent)
    await served.telegram.receive(ADMIN, "/link")
    link = await wait_text(served, ADMIN, "/link ", before)
    link_code = re.search(r"/link ([A-Z2-9]{8})", link)
    assert link_code, link
    before = len(served.telegram.sent)
    await served.telegram.receive("999", f"/link {link_code.group(1)}")
    await wait_text(served, "999", "Linked with telegram:42", before)
    assert (await served.app.peers.access("telegram:999")).is_admin
