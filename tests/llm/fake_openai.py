"""A fake OpenAI-compatible server on 127.0.0.1: the LLM vendor, faked at the wire.

It answers ``POST …/chat/completions`` from a script of replies and ``POST
…/audio/transcriptions`` (a multipart upload) from a script of transcripts;
anything else gets 404, so a wrong path is seen, not hung on. Every request
is recorded; an upload's fields are in ``body`` (the file as ``file`` — its
name, type and bytes).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
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


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart form."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class FakeOpenAI:
    #: each reply: a chat.completion JSON body, an HTTP status code (error), or CLOSE
    replies: list[dict[str, Any] | int | str]
    received: list[Received] = field(default_factory=list)
    port: int = 0
    #: each answer to ``/audio/transcriptions``: the transcript, or an HTTP status code
    transcripts: list[str | int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_reply(self) -> dict[str, Any] | int | str:
        if len(self.replies) > 1:
            return self.replies.pop(0)
        return self.replies[0]  # the last reply repeats

    def next_transcript(self) -> str | int:
        if not self.transcripts:
            return 404
        if len(self.transcripts) > 1:
            return self.transcripts.pop(0)
        return self.transcripts[0]


def multipart_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """The fields of a ``multipart/form-data`` body: text as str, files as :class:`Upload`."""
    import email
    from email import policy

    parsed = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=policy.HTTP
    )
    fields: dict[str, Any] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            fields[str(name)] = Upload(filename, part.get_content_type(), data)
        else:
            fields[str(name)] = data.decode()
    return fields


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
def fake_openai(
    replies: list[dict[str, Any] | int | str], *, transcripts: Sequence[str | int] = ()
) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(list(replies), transcripts=list(transcripts))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            content_type = self.headers.get("content-type") or ""
            try:
                if content_type.startswith("multipart/form-data"):
                    body = multipart_fields(content_type, raw)
                else:
                    body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            fake.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            reply: dict[str, Any] | int | str
            if self.path.endswith("/audio/transcriptions"):
                said = fake.next_transcript()
                reply = {"text": said} if isinstance(said, str) else said
            elif self.path.endswith("/chat/completions"):
                reply = fake.next_reply()
            else:
                reply = 404
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
