"""End to end: an agent's task held at a start gate, the admin alerted on a channel,
``/approve`` from that chat, the task run by the runner, its file in the project.

Needs the gateway's MemoryChannel (``polpo.testing``); skipped where it is not present.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.notifications import Notifier
from polpo.runner.component import RunnerComponent
from tests.runner.conftest import Script

testing = pytest.importorskip("polpo.testing")

ADMIN = "39123456789"
CONFIG: dict[str, Any] = {
    "project": "demo",
    "agents": [
        {"name": "coder", "role": "Engineer", "tools": ["write_file", "read_file"]},
    ],
    "settings": {
        "approvalGates": [{"name": "plan", "hook": "task:start", "agents": ["coder"]}],
        "runner": {"pollSeconds": 60},
        "notifications": {
            "channels": {
                "wa": {
                    "type": "whatsapp",
                    "gateway": {"enableInbound": True, "allowFrom": [f"+{ADMIN}"]},
                }
            }
        },
    },
}


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POLPO_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


async def test_start_gate_alert_reaches_the_admin_and_approve_from_chat_runs_the_task(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(CONFIG), encoding="utf-8")
    app = await Polpo.open(load_config(path), clock=FakeClock())
    whatsapp = testing.MemoryChannel("whatsapp")
    done = asyncio.Event()

    async def on_done(ev: Any) -> None:
        done.set()

    app.bus.subscribe("task:done", on_done)
    script = Script([[("write_file", {"path": "hello.txt", "content": "hi"})], "wrote hello.txt"])
    runner = RunnerComponent(app, model_factory=script.factory())
    notifier = Notifier(app)
    try:
        async with testing.running_gateway(app, whatsapp) as gw:
            await runner.start()
            await notifier.start()
            task = await app.tasks.add("Say hello", agent="coder")

            (alert,) = await whatsapp.wait_sent(1)
            (approval,) = await app.approvals.list()
            assert alert.chat_id == f"{ADMIN}@s.whatsapp.net"
            assert f"/approve {approval.short_id}" in alert.text
            assert "Say hello" in alert.text
            assert script.requests == 0

            replies = await testing.exchange(gw, whatsapp, ADMIN, f"/approve {approval.short_id}")
            assert replies, "the approval is acknowledged"
            await asyncio.wait_for(done.wait(), 10)
            assert (await app.tasks.get(task.id)).status == "done"
            assert (root / "hello.txt").read_text() == "hi"
            resolved = await app.approvals.get(approval.id)
            assert resolved.status == "approved" and resolved.resolved_by == f"whatsapp:{ADMIN}"
    finally:
        await notifier.stop()
        await runner.stop()
        await app.close()


async def test_thumbs_down_on_a_review_alert_and_a_reason_revise_the_task(tmp_path: Path) -> None:
    config = json.loads(json.dumps(CONFIG))
    config["settings"]["approvalGates"] = [
        {"name": "review", "hook": "task:complete", "agents": ["coder"], "maxRevisions": 1}
    ]
    root = tmp_path / "proj"
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    app = await Polpo.open(load_config(path), clock=FakeClock())
    whatsapp = testing.MemoryChannel("whatsapp")
    answers = iter(["first draft", "second draft"])
    script = Script([lambda messages: next(answers)])
    runner = RunnerComponent(app, model_factory=script.factory())
    notifier = Notifier(app)
    try:
        async with testing.running_gateway(app, whatsapp) as gw:
            await runner.start()
            await notifier.start()
            task = await app.tasks.add("Write the intro", agent="coder")

            (alert,) = await whatsapp.wait_sent(1)
            assert "first draft" in alert.text  # the result to review is in the alert
            (approval,) = await app.approvals.list()
            asked = await testing.exchange(
                gw, whatsapp, ADMIN, "", kind="reaction", reaction="👎", target_id=alert.message_id
            )
            assert asked and "feedback" in asked[0]
            await testing.exchange(gw, whatsapp, ADMIN, "make it shorter")

            sent = await whatsapp.wait_sent(4)  # the second review request arrives
            assert any("second draft" in s.text for s in sent)
            assert "make it shorter" in script.prompts[1]
            rejected = await app.approvals.get(approval.id)
            assert rejected.status == "rejected" and rejected.feedback == "make it shorter"
            assert (await app.tasks.get(task.id)).revision_count == 1
    finally:
        await notifier.stop()
        await runner.stop()
        await app.close()
