"""Text Polpo itself sent is never taken as input, across restarts (SPEC §3, §12).

The attack (reproduced on an earlier main): on WhatsApp the owner's
"message yourself" chat is Polpo's admin console, and WhatsApp shows Polpo's
own replies there again as messages "from me". A reply of three parts went
out; only the first part's id was stored, the others lived in memory. After
a restart, WhatsApp replayed the echoes: the second part, which began with
``/approve <id>`` (the model had quoted the command), **ran as an admin
command** and approved the work; the third started a chat turn. Here the
gateway really restarts on the same SQLite file, and the echoes of every
part come back afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

OWNER = "39123456789"
SELF_CHAT = f"{OWNER}@s.whatsapp.net"


def _write_config(root: Path) -> Path:
    config: dict[str, Any] = {
        "project": "echoes",
        "agents": [{"name": "coder"}],
        "settings": {
            "runner": {"enabled": False},
            "notifications": {
                "channels": {
                    "wa": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [f"+{OWNER}"],
                            "selfChat": True,
                        },
                    }
                }
            },
        },
    }
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _whatsapp(clock: FakeClock, **kw: Any) -> MemoryChannel:
    # short parts, so the reply below goes out as three messages
    return MemoryChannel("whatsapp", clock=clock, max_text_length=60, **kw)


@pytest.mark.parametrize("mint_ids", [False, True], ids=["network-ids", "assigned-ids"])
async def test_echoes_of_every_part_are_ignored_after_a_restart(
    tmp_path: Path, mint_ids: bool
) -> None:
    path = _write_config(tmp_path)
    clock = FakeClock()
    app = await Polpo.open(load_config(path), clock=clock)
    task = await app.tasks.add("Deploy to production", agent="coder")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, task, "running")
    approval = await app.approvals.request(task.id, gate="review", hook="task:complete")

    reply = (
        "I looked at the deploy task and it waits for you.\n\n"
        f"/approve {approval.short_id}\n\n"
        "Send that when you are happy with it, or reject it instead."
    )
    responder = RecordingResponder(answer=lambda text: reply)
    first = _whatsapp(clock, mint_ids=mint_ids)
    async with running_gateway(app, first, responder=responder) as gw:
        sent = await exchange(
            gw, first, OWNER, "what is waiting?", is_self_chat=True, is_from_me=True
        )
        assert len(sent) == 3 and sent[1].startswith(f"/approve {approval.short_id}")
        parts = list(first.sent)
    await app.close()

    # a real restart: a new process's gateway on the same database file
    app = await Polpo.open(load_config(path), clock=clock)
    try:
        responder = RecordingResponder()
        second = _whatsapp(clock)
        async with running_gateway(app, second, responder=responder) as gw:
            for part in parts:  # WhatsApp replays our own messages into the self-chat
                echo = await exchange(
                    gw,
                    second,
                    OWNER,
                    part.text,
                    message_id=part.message_id,
                    chat_id=SELF_CHAT,
                    is_self_chat=True,
                    is_from_me=True,
                )
                assert echo == []
            assert responder.calls == []  # no chat turn started
            assert (await app.approvals.get(approval.id)).status == "pending"  # no command ran
            # the owner typing in the console still works
            [answer] = await exchange(
                gw, second, OWNER, "still there?", is_self_chat=True, is_from_me=True
            )
            assert answer == "echo: still there?"
    finally:
        await app.close()
