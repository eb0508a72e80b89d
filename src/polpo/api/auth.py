"""Every route needs credentials: a dashboard session cookie or a bearer token.

Accepted: the session cookie a one-time link set (:mod:`polpo.api.sessions`),
``Authorization: Bearer`` with the CLI's token from ``.polpo/serve.json``, or
with the API key (``--api-key`` / ``POLPO_API_KEY``, required off loopback).
Open to all: ``/api/v1/health`` (probes), the static files (code and styles,
no data), and ``/`` itself, which shows the sign-in line when there is no
session. The check is a middleware, so a router added later is covered
without doing anything.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from polpo.api.sessions import Sessions

API_PREFIX = "/api/v1"
#: Reachable without credentials (a load balancer's or ``polpo whatsapp status``'s probe).
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)

SIGN_IN_HINT = (
    "sign in: open the dashboard link polpo serve printed (or run polpo dashboard for a "
    "fresh one), or send Authorization: Bearer KEY"
)


def session_cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    raw = headers.get(b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is simply no session
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


class RequireAuth:
    """Pure ASGI middleware: 401 without a valid session cookie or bearer token."""

    def __init__(self, app: ASGIApp, sessions: Sessions, api_key: str | None = None) -> None:
        self.app = app
        self.sessions = sessions
        self.api_key = f"Bearer {api_key}".encode() if api_key else None

    def authenticated(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"")
        if given:
            if self.api_key is not None and hmac.compare_digest(given, self.api_key):
                return True
            scheme, _, token = given.decode("latin-1").partition(" ")
            return scheme.lower() == "bearer" and self.sessions.is_cli_token(token.strip())
        return self.sessions.is_session(session_cookie(headers, self.sessions.cookie_name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or (
            path in PUBLIC_PATHS
            or path.rstrip("/") in PUBLIC_PATHS
            or path.startswith(PUBLIC_PREFIXES)
            or self.authenticated(dict(scope.get("headers") or []))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse(
            {"error": SIGN_IN_HINT}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)
