"""Refuse every request whose ``Host`` is not a name of this server (DNS rebinding).

A page on ``evil.example`` can make its own name resolve to 127.0.0.1 and then
read our answers as if they were its own: the browser still sends
``Host: evil.example``. So before any route runs, the ``Host`` header must be
the address ``polpo serve`` is bound to, a loopback name, or a name the owner
listed in ``settings.server.allowedHosts``. The port is not compared: the
attack is about names, and a reverse proxy may use another port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: Always accepted: the loopback names a browser on this machine uses.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: Bound addresses that are not names a client would use.
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})

_HOST = re.compile(r"^(?P<name>[a-z0-9.\-_]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")


def host_name(header: str) -> str | None:
    """``"Example.COM:3890"`` → ``"example.com"``; ``"[::1]:80"`` → ``"[::1]"``;
    ``None`` for anything that is not a host name with an optional port."""
    m = _HOST.match(header.strip().lower())
    if m is None:
        return None
    name = m.group("name")
    return name[:-1] if name.endswith(".") and len(name) > 1 else name


def bracketed(address: str) -> str:
    """An IPv6 address as it appears in a ``Host`` header (``::1`` → ``[::1]``)."""
    a = address.strip().lower()
    return f"[{a}]" if ":" in a and not a.startswith("[") else a


def allowed_host_names(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a request may use: loopback, the bound address, the owner's list."""
    names = set(LOOPBACK_NAMES)
    b = bracketed(bound)
    if b not in WILDCARDS:
        names.add(b)
    names.update(bracketed(n) for n in extra)
    return frozenset(names)


class HostCheck:
    """Pure ASGI middleware: 421 for a foreign ``Host``, 400 for a missing or malformed one."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        name = host_name(raw)
        if name is None:
            response = JSONResponse(
                {"error": "refused: the request has no valid Host header"}, status_code=400
            )
        elif name not in self.allowed:
            response = JSONResponse(
                {
                    "error": f"refused: {name!r} is not a name this Polpo answers to "
                    "(add it to settings.server.allowedHosts if it is yours)"
                },
                status_code=421,
            )
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await response(scope, receive, send)
