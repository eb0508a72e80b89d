"""The whole product in one process, as ``polpo serve`` builds it.

The real serve host (event tail, runner, gateway with its outbox dispatcher,
notifications, HTTP API on a real socket) runs against a project on disk.
Only the outside world is replaced: the Telegram network by a
``MemoryChannel`` playing the ``telegram`` channel, the LLM vendor by a
``FunctionModel``. A phone user gets the approval alert, answers it with
``/approve`` or a 👍 reaction, and the agent's file change lands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.api.server import ApiServer
from polpo.app import Polpo
from polpo.config import load_config
from polpo.core.models import Approval, Event
from polpo.gateway.component import GatewayComponent
from polpo.host import Host
from polpo.serve import ServeOptions, build_serve_host
from polpo.testing import MemoryChannel

ADMIN = "42"


def _write_config(root: Path) -> None:
    config = {
        "project": "phone",
        "agents": [
            {"name": "coder", "role": "engineer", "tools": ["write_file", "read_file"]},
        ],
        "settings": {
            "approvalGates": [{"name": "go", "hook": "task:start", "agents": ["coder"]}],
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [ADMIN],
                        },
                    }
                }
            },
        },
    }
    (root / ".polpo").mkdir(parents=True)
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config), encoding="utf-8")


def _writer_model(prompts: list[str]) -> FunctionModel:
    """An agent that writes ``<first word of the title>.txt`` and says it is done."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            prompt = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
            prompts.append(prompt)
            # "Task k7m2: hello: write the greeting" → hello
            name = prompt.split(": ", 1)[1].split(":", 1)[0]
            return ModelResponse(
                parts=[
                    ToolCallPart(
                        "write_file", {"path": f"{name}.txt", "content": f"{name} done\n"}, "w1"
                    )
                ]
            )
        return ModelResponse(parts=[TextPart("written")])

    return FunctionModel(respond)


@dataclass
class Served:
    app: Polpo
    host: Host
    telegram: MemoryChannel
    root: Path
    prompts: list[str]
    wait_for: Callable[[str, str], Any]


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    _write_config(root)
    prompts: list[str] = []
    model = _writer_model(prompts)
    telegram = MemoryChannel("telegram")
    monkeypatch.setattr("polpo.channels.factory.build_channels", lambda app: [telegram])
    monkeypatch.setattr("polpo.runner.runner.DEFAULT_MODEL_FACTORY", lambda agent, config: model)
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    host = await build_serve_host(app, ServeOptions(port=0))

    seen: list[Event] = []
    changed = asyncio.Condition()

    async def record(ev: Event) -> None:
        async with changed:
            seen.append(ev)
            changed.notify_all()

    app.bus.subscribe("*", record)

    async def wait_for(type_: str, task_id: str) -> Event:
        def found() -> Event | None:
            return next(
                (e for e in seen if e.type == type_ and e.payload.get("taskId") == task_id), None
            )

        async with changed:
            await asyncio.wait_for(changed.wait_for(lambda: found() is not None), 15)
        ev = found()
        assert ev is not None
        return ev

    await host.start()
    try:
        yield Served(app, host, telegram, root, prompts, wait_for)
    finally:
        await host.stop()
        await app.close()


async def _approval_requested(served: Served, task_id: str) -> Approval:
    ev = await served.wait_for("approval:requested", task_id)
    return await served.app.approvals.get(str(ev.payload["approvalId"]))


async def _alert_for(served: Served, short: str, before: int) -> Any:
    sent = await served.telegram.wait_sent(before + 1, within=15)
    alerts = [s for s in sent[before:] if f"/approve {short}" in s.text]
    assert alerts, [s.text for s in sent]
    # delivered: a reply or reaction to it comes after its send is recorded (its id)
    component = next(c for c in served.host.components if isinstance(c, GatewayComponent))
    await component.settle()
    return alerts[0]


async def test_start_gate_alert_then_approve_from_the_phone_runs_the_task(served: Served) -> None:
    task = await served.app.tasks.add("hello: write the greeting", agent="coder")
    approval = await _approval_requested(served, task.id)

    alert = await _alert_for(served, approval.short_id, 0)
    assert alert.chat_id == ADMIN
    assert "Approval needed" in alert.text
    assert [b.command for b in alert.message.buttons] == [
        f"/approve {approval.short_id}",
        f"/reject {approval.short_id}",
    ]
    assert not (served.root / "hello.txt").exists()
    assert (await served.app.tasks.get(task.id)).status == "awaiting_approval"

    before = len(served.telegram.sent)
    await served.telegram.receive(ADMIN, f"/approve {approval.short_id}")
    await served.wait_for("task:done", task.id)

    assert (served.root / "hello.txt").read_text() == "hello done\n"
    done = await served.app.tasks.get(task.id)
    assert done.status == "done"
    replies = [s.text for s in served.telegram.sent[before:]]
    assert any("pprove" in r and approval.short_id in r for r in replies), replies


async def test_thumbs_up_on_the_alert_approves_it(served: Served) -> None:
    task = await served.app.tasks.add("thumbs: by reaction", agent="coder")
    approval = await _approval_requested(served, task.id)
    alert = await _alert_for(served, approval.short_id, 0)

    await served.telegram.receive(
        ADMIN, "", kind="reaction", reaction="👍", target_id=alert.message_id
    )
    await served.wait_for("task:done", task.id)
    assert (served.root / "thumbs.txt").read_text() == "thumbs done\n"
    decided = await served.app.approvals.get(approval.id)
    assert decided.status == "approved"
    assert decided.resolved_by == f"telegram:{ADMIN}"


async def test_a_thumbs_up_in_another_skin_tone_approves_too(served: Served) -> None:
    task = await served.app.tasks.add("thumbs: by reaction", agent="coder")
    approval = await _approval_requested(served, task.id)
    alert = await _alert_for(served, approval.short_id, 0)
    await served.telegram.receive(
        ADMIN, "", kind="reaction", reaction="👍🏽", target_id=alert.message_id
    )
    await served.wait_for("task:done", task.id)
    assert (await served.app.approvals.get(approval.id)).status == "approved"


async def test_a_stranger_cannot_approve_and_the_api_shows_the_channel(served: Served) -> None:
    task = await served.app.tasks.add("secret: not for strangers", agent="coder")
    approval = await _approval_requested(served, task.id)
    await _alert_for(served, approval.short_id, 0)
    before = len(served.telegram.sent)

    await served.telegram.receive("666", f"/approve {approval.short_id}")
    gateway = served.host.registry["gateway"]
    await gateway.wait_idle(5)

    assert (await served.app.approvals.get(approval.id)).status == "pending"
    assert (await served.app.tasks.get(task.id)).status == "awaiting_approval"
    assert served.telegram.sent[before:] == []  # silently ignored (allowlist)

    server = next(c for c in served.host.components if isinstance(c, ApiServer))
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.cli_token}"}
    ) as client:
        channels = (await client.get("/api/v1/channels")).json()
    assert any(c.get("channel") == "telegram" or c.get("name") == "telegram" for c in channels)
