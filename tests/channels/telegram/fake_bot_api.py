"""A fake Telegram Bot API server: real HTTP on 127.0.0.1, run by the test.

It speaks the wire format python-telegram-bot uses (form-encoded POSTs to
``/bot<token>/<method>``, ``{"ok": …, "result": …}`` answers) and keeps the
semantics that matter to a poller: ``getUpdates`` drops (confirms) every
update below the offset it is called with, long-polls up to ``timeout``
seconds, and answers at once when updates are queued. ``sendMessage``
checks Telegram HTML the way Telegram does (a stray ``<`` or an unclosed tag
is "can't parse entities") and any method can be scripted to fail.

Runs in the test's event loop (``await api.start()``) or in a thread of its
own for code that calls ``asyncio.run`` itself (``api.start_in_thread()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456:TEST-token"
BOT_ID = 123456
BOT_USERNAME = "polpo_test_bot"

#: parameters PTB sends JSON-encoded; everything else is kept as the string it is
_JSON_PARAMS = {
    "offset",
    "limit",
    "timeout",
    "chat_id",
    "reply_markup",
    "reply_parameters",
    "allowed_updates",
    "drop_pending_updates",
    "cache_time",
    "show_alert",
}
_TG_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


class Changes:
    """Something happened (a request, a message, a sleep): wakes whoever waits."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Return once ``predicate()`` holds; fail the test after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not predicate():
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str


class FakeBotApi:
    def __init__(self, changes: Changes | None = None, *, token: str = TOKEN) -> None:
        self.token = token
        self.changes = changes or Changes()
        #: queued updates not yet confirmed by an offset
        self.updates: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        #: successful sendMessage calls: chat_id, text, parse_mode, reply_markup, …
        self.sent: list[dict[str, Any]] = []
        self.failures: dict[str, list[Failure]] = defaultdict(list)
        self.webhook_url = ""
        self.port = 0
        self._next_update_id = 1000
        self._next_message_id = 500
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        #: files users sent, by file_id: ``getFile`` describes them, ``/file/bot…`` serves them
        self.files: dict[str, bytes] = {}
        #: file paths downloaded (``/file/bot<token>/<path>``)
        self.downloads: list[str] = []
        self._app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            ]
        )

    # -- scripting ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (an ``update_id`` is assigned unless given)."""
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
        self.updates.append(update)
        self._notify()
        return int(update["update_id"])

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` fail with this answer."""
        for _ in range(times):
            self.failures[method].append(
                Failure(status, description, retry_after, migrate_to_chat_id)
            )
        self._notify()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    def poll_offsets(self) -> list[int | None]:
        return [p.get("offset") for p in self.calls_to("getUpdates")]

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port again after a :meth:`stop`)."""
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so,
        # and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._loop = asyncio.get_running_loop()
        self._closing = False
        # startup()/shutdown() without serve()'s main loop and its 0.1 s ticks:
        # tests start and stop many of these.
        config.load()
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[sock])

    async def stop(self) -> None:
        """Stop answering: pending long polls return, new connections are refused."""
        self._closing = True
        self._notify()
        server, self._server = self._server, None
        if server is None:
            return
        for listening in server.servers:
            listening.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        async with asyncio.timeout(5):
            while server.server_state.connections or server.server_state.tasks:  # noqa: ASYNC110
                await asyncio.sleep(0.002)

    def start_in_thread(self) -> None:
        ready = threading.Event()

        async def main() -> None:
            self._thread_stop = asyncio.Event()
            await self.start()
            ready.set()
            await self._thread_stop.wait()
            await self.stop()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Bot API did not start")

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None or self._thread_stop is None:
            return
        self._loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join(10)
        self._thread = None

    def _notify(self) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and loop.is_running():
            loop.call_soon_threadsafe(self.changes.notify)
        else:
            self.changes.notify()

    # -- the API -----------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        params = await _read_params(request)
        self.calls.append(Call(method, params, token))
        self._notify()
        if token != self.token:
            return _error(401, "Unauthorized")
        if self.failures[method]:
            f = self.failures[method].pop(0)
            extra: dict[str, Any] = {}
            if f.retry_after is not None:
                extra["retry_after"] = f.retry_after
            if f.migrate_to_chat_id is not None:
                extra["migrate_to_chat_id"] = f.migrate_to_chat_id
            return _error(f.status, f.description, extra or None)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        result = await handler(params)
        if isinstance(result, JSONResponse):
            return result
        return JSONResponse({"ok": True, "result": result})

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            return _error(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"files/{file_id}",
        }

    async def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        path = request.path_params["path"]
        self.downloads.append(path)
        self._notify()
        data = self.files.get(path.removeprefix("files/"))
        return Response(status_code=404) if data is None else Response(data)

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Polpo Test",
            "username": BOT_USERNAME,
        }

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        limit = params.get("limit") or 100
        timeout = float(params.get("timeout") or 0)
        if isinstance(offset, int) and offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self.updates and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await self.changes.until(lambda: bool(self.updates) or self._closing, left)
            except TimeoutError:
                break
        return self.updates[:limit]

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        text = params.get("text", "")
        if params.get("parse_mode") == "HTML":
            problem = html_problem(text)
            if problem:
                return _error(400, f"Bad Request: can't parse entities: {problem}")
            plain = html.unescape(_TAG.sub("", text))
        else:
            plain = text
        if not plain.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(plain.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        chat_id = params["chat_id"]
        self.sent.append(params)
        self._next_message_id += 1
        self._notify()
        return {
            "message_id": self._next_message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "text": plain,
        }

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook_url = ""
        return True


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse ``text`` as HTML, or None if it would take it."""
    stack: list[str] = []
    pos = 0
    for m in _TAG.finditer(text):
        if "<" in text[pos : m.start()] or ">" in text[pos : m.start()]:
            return f"unexpected character at byte offset {pos}"
        closing, name = m.group(1) == "/", m.group(2).lower()
        if name not in _TG_TAGS:
            return f'Unsupported start tag "{name}" at byte offset {m.start()}'
        if closing:
            if not stack or stack[-1] != name:
                return f"Unexpected end tag at byte offset {m.start()}"
            stack.pop()
        else:
            stack.append(name)
        pos = m.end()
    rest = text[pos:]
    if "<" in rest or ">" in rest:
        return f"unexpected character at byte offset {pos}"
    if stack:
        return f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
    for amp in re.finditer("&", text):
        if not _ENTITY.match(text, amp.start()):
            return f"Character entity expected at byte offset {amp.start()}"
    return None


async def _read_params(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(body or b"{}")
        return dict(data)
    out: dict[str, Any] = {}
    for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
        value: Any = values[-1]
        if key in _JSON_PARAMS:
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[key] = value
    return out


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


def _chat(chat_id: Any) -> dict[str, Any]:
    if isinstance(chat_id, int) and chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "A group"}
    if isinstance(chat_id, int):
        return {"id": chat_id, "type": "private", "first_name": "Someone"}
    return {"id": -1001, "type": "channel", "title": str(chat_id)}


# -- update builders ---------------------------------------------------------

DATE = 1_800_000_000


def user(
    user_id: int = 111, first: str = "Ada", last: str | None = "Lovelace", **extra: Any
) -> dict[str, Any]:
    u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first, **extra}
    if last is not None:
        u["last_name"] = last
    return u


def private_chat(user_id: int = 111) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": "Ada"}


def group_chat(chat_id: int = -1001234, kind: str = "supergroup") -> dict[str, Any]:
    return {"id": chat_id, "type": kind, "title": "Team"}


def message(
    text: str | None = "hello",
    *,
    message_id: int = 1,
    sender: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
    date: int = DATE,
    **extra: Any,
) -> dict[str, Any]:
    sender = sender if sender is not None else user()
    m: dict[str, Any] = {
        "message_id": message_id,
        "date": date,
        "chat": chat if chat is not None else private_chat(sender["id"]),
        "from": sender,
        **extra,
    }
    if text is not None:
        m["text"] = text
    return m


def callback(
    data: str,
    *,
    query_id: str = "cbq-1",
    sender: dict[str, Any] | None = None,
    on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sender = sender if sender is not None else user()
    q: dict[str, Any] = {"id": query_id, "from": sender, "chat_instance": "ci-1", "data": data}
    if on is not None:
        q["message"] = on
    return {"callback_query": q}
