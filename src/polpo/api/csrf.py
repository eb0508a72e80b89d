"""Cross-site writes are refused: a state-changing request needs JSON and our own Origin.

Any page the owner visits can make the browser send a POST to 127.0.0.1 (an
HTML form, ``fetch`` with ``no-cors``), with the owner's cookies if the
browser allows it. Such a request can only carry a form or text/plain body
unless the server agrees to a CORS preflight (Polpo never does), and it
carries the attacker's ``Origin``. So POST/PUT/PATCH/DELETE must have
``Content-Type: application/json`` *and* an ``Origin`` (or, when a browser
leaves it out, a ``Referer``) whose host is this request's ``Host`` — which
:mod:`polpo.api.hosts` has already checked is ours.

Requests with ``Authorization: Bearer …`` are scripts and the CLI: a page
cannot set that header cross-site without a preflight, so they pass here and
:mod:`polpo.api.auth` checks the key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin_of(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an ``Origin`` or ``Referer`` value; None for ``null``/junk."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, parts.netloc.lower()


def refusal(method: str, headers: dict[bytes, bytes]) -> str | None:
    """Why this request is refused as a possible cross-site write, or None."""
    if method.upper() not in STATE_CHANGING:
        return None
    if headers.get(b"authorization", b"")[:7].lower() == b"bearer ":
        return None
    media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media != b"application/json":
        return "refused: state-changing requests must send a JSON body (Content-Type: application/json)"
    raw = headers.get(b"origin") or headers.get(b"referer")
    if raw is None:
        return "refused: a state-changing request without Origin or Referer (cross-site?)"
    given = _origin_of(raw.decode("latin-1"))
    own = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if given is None or given[1] != own:
        shown = raw.decode("latin-1")[:100]
        return f"refused: cross-site request from {shown!r} (this server is {own!r})"
    return None


class SameOriginWrites:
    """Pure ASGI middleware: 403 with a one-line error for a possible cross-site write."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = refusal(scope.get("method", "GET"), dict(scope.get("headers") or []))
            if why is not None:
                await JSONResponse({"error": why}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
