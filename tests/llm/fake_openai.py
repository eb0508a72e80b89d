"""A fake OpenAI-compatible server on 127.0.0.1: the LLM vendor, faked at the wire.

It answers ``POST …/chat/completions`` (and anything else, so a wrong path is
seen, not hung on) from a script of replies, and records every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Close the connection without answering.
CLOSE = "close"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    #: each reply: a chat.completion JSON body, an HTTP status code (error), or CLOSE
    replies: list[dict[str, Any] | int | str]
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_reply(self) -> dict[str, Any] | int | str:
        if len(self.replies) > 1:
            return self.replies.pop(0)
        return self.replies[0]  # the last reply repeats


def completion(
    *, text: str | None = None, tool_calls: list[tuple[str, str, dict[str, Any]]] = ()
) -> dict[str, Any]:
    """A non-streaming chat.completion with a text or tool calls ``(id, name, args)``."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for cid, name, args in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": "some-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@contextmanager
def fake_openai(replies: list[dict[str, Any] | int | str]) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(list(replies))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            fake.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            reply = fake.next_reply() if self.path.endswith("/chat/completions") else 404
            if reply == CLOSE:
                self.close_connection = True
                return
            status, payload = (200, reply) if isinstance(reply, dict) else (int(reply), None)
            data = json.dumps(
                payload or {"error": {"message": f"fake error {status}", "type": "server_error"}}
            ).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("retry-after-ms", "1")  # let the client's retries be quick
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
