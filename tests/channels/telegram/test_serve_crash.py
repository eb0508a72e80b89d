"""Replies exactly once, as far as Telegram allows, across SIGKILLs (SPEC §12).

A real ``polpo serve`` process answers three Telegram users through a local
fake Bot API (each answer three parts long, from a scripted model behind a
local OpenAI-compatible server). The fake Bot API kills the process with
SIGKILL the moment it has taken certain parts — the worst moment: the part
is out, and serve never learns it. Serve is started again on the same
database each time. Telegram lets the sender pick no message id, so the one
part in flight per chat may go out again; nothing else may: at most one
repeated part per chat per kill, never a whole reply twice, every part
delivered, and each chat's parts in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import TOKEN, Changes, FakeBotApi, message, user

USERS = [201, 202, 203]
MESSAGES_PER_USER = 2
PARTS = 3
#: kill serve when the Bot API has taken this many parts in all (of 18)
KILL_AT = (4, 11)
FILLER = "word " * 700  # 3,500 characters: two paragraphs never share a 4,096 part


def _reply_to(text: str) -> str:
    return "\n\n".join(f"[{text} part {n}] {FILLER}".strip() for n in range(1, PARTS + 1))


@pytest.fixture
def model_server() -> Iterator[str]:
    """An OpenAI-compatible server whose answer is derived from the user's message."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            users = [m for m in body.get("messages", []) if m.get("role") == "user"]
            content = users[-1]["content"] if users else ""
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content)
            data = json.dumps(
                {
                    "id": "chatcmpl-crash",
                    "object": "chat.completion",
                    "created": 1_800_000_000,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": _reply_to(content)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


class KillingBotApi(FakeBotApi):
    """Takes a part, then SIGKILLs serve before answering, at the chosen counts."""

    def __init__(self, changes: Changes) -> None:
        super().__init__(changes)
        self.pid: int | None = None
        #: len(sent) at each kill
        self.kills: list[int] = []

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        result = await super()._api_sendMessage(params)
        if self.pid is not None and len(self.sent) in KILL_AT and len(self.sent) not in self.kills:
            self.kills.append(len(self.sent))
            os.kill(self.pid, signal.SIGKILL)  # the part is out; serve never hears back
            self.pid = None
        return result


def _project(root: Path, api: FakeBotApi, model_url: str) -> None:
    config: dict[str, Any] = {
        "project": "crashy",
        "settings": {
            "orchestratorModel": "local:m",
            "providers": {"local": {"baseUrl": model_url}},
            "runner": {"enabled": False},
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "botTokenEnv": "CRASH_TG_TOKEN",
                        "apiBaseUrl": api.base_url,
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [str(u) for u in USERS],
                        },
                    }
                }
            },
        },
    }
    (root / ".polpo").mkdir(parents=True)
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config), encoding="utf-8")


async def _serve(root: Path) -> asyncio.subprocess.Process:
    exe = Path(sys.executable).parent / "polpo"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "polpo.cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLPO_", "OPENAI_"))}
    env.update(CRASH_TG_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        *cmd,
        "serve",
        "--port",
        "0",
        cwd=root,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _texts(api: FakeBotApi, chat: int) -> list[str]:
    return [str(m["text"]) for m in api.sent if str(m.get("chat_id")) == str(chat)]


async def test_sigkill_while_sending_repeats_at_most_the_part_in_flight_per_chat(
    tmp_path: Path, model_server: str
) -> None:
    api = KillingBotApi(Changes())
    await api.start()
    root = tmp_path / "proj"
    _project(root, api, model_server)
    expected = {
        u: [f"[m{u}-{i} part {n}]" for i in range(MESSAGES_PER_USER) for n in range(1, PARTS + 1)]
        for u in USERS
    }
    for i in range(MESSAGES_PER_USER):
        for u in USERS:
            api.push({"message": message(f"m{u}-{i}", message_id=100 * i + u, sender=user(u))})

    def all_delivered() -> bool:
        return all(
            {t.split("]")[0] + "]" for t in _texts(api, u)} >= set(expected[u]) for u in USERS
        )

    proc: asyncio.subprocess.Process | None = None
    #: how many parts the Bot API had taken when each killed serve was gone
    dead_at: list[int] = []
    try:
        while True:
            proc = await _serve(root)
            api.pid = proc.pid
            before = len(api.kills)

            def killed_or_done(before: int = before) -> bool:
                return len(api.kills) > before or all_delivered()

            await api.changes.until(killed_or_done, 60)
            if len(api.kills) > before:
                assert await proc.wait() == -signal.SIGKILL
                dead_at.append(len(api.sent))
                continue
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
            break
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api.stop()

    assert api.kills == list(KILL_AT)
    heads = [str(m["text"]).split("]")[0] + "]" for m in api.sent]
    chats = [str(m.get("chat_id")) for m in api.sent]
    for u in USERS:
        mine = [(i, h) for i, (h, c) in enumerate(zip(heads, chats, strict=True)) if c == str(u)]
        # every part arrived, in order (counting first appearances)
        assert list(dict.fromkeys(h for _i, h in mine)) == expected[u]
        # what may repeat: the chat's last part out before each kill (the one in flight)
        in_flight = Counter(
            next((h for i, h in reversed(mine) if i < dead), None) for dead in dead_at
        )
        repeated = Counter(h for _i, h in mine) - Counter({h for _i, h in mine})
        assert repeated <= in_flight, (u, repeated, in_flight)
        # so never a whole reply twice
        assert all(n < PARTS for n in Counter(h.split(" part ")[0] for h in repeated).values())
