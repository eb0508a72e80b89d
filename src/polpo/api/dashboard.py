"""The dashboard page and its sign-in: ``/?token=…`` → session cookie → ``/``.

``GET /?token=T`` spends the one-time token, sets the session cookie and
redirects to ``/`` (303), so the token is neither in the address bar nor in
the history. ``GET /`` with a session is the dashboard; without one it is a
page with one line saying how to sign in. ``POST /api/v1/dashboard/link``
(authenticated: the CLI's token or the API key) makes a fresh one-time link;
``polpo dashboard`` calls it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from polpo.api.auth import session_cookie
from polpo.api.sessions import LINK_TTL_SECONDS, Sessions

router = APIRouter()

SIGN_IN_LINE = (
    "To open the dashboard, use the link <code>polpo serve</code> printed when it started. "
    "Lost it, or used it already? Run <code>polpo dashboard</code> in the project folder "
    "for a fresh one."
)
USED_LINK_LINE = (
    "This sign-in link was already used or has expired. Run <code>polpo dashboard</code> "
    "in the project folder for a fresh one."
)
NO_STORE = {"Cache-Control": "no-store"}


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def sign_in_page(line: str, status_code: int = 401) -> HTMLResponse:
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Polpo — sign in</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"><link rel="icon" href="data:,">'
        "</head>"
        f'<body><h1>Polpo</h1><p class="signin" id="signin">{line}</p></body></html>\n'
    )
    return HTMLResponse(body, status_code=status_code, headers=NO_STORE)


@router.get("/", include_in_schema=False, response_model=None)
async def dashboard(request: Request, token: str | None = None) -> Response:
    sessions = _sessions(request)
    signed_in = sessions.is_session(
        session_cookie(dict(request.scope["headers"]), sessions.cookie_name)
    )
    if token is not None:
        session = sessions.redeem(token)
        if session is None and not signed_in:
            return sign_in_page(USED_LINK_LINE)
        response = RedirectResponse("/", status_code=303, headers=NO_STORE)
        if session is not None:
            response.headers["Set-Cookie"] = sessions.cookie(session)
        return response
    if not signed_in:
        return sign_in_page(SIGN_IN_LINE)
    static = request.app.state.static_dir
    return FileResponse(static / "index.html", headers=NO_STORE)


@router.post("/api/v1/dashboard/link", tags=["dashboard"])
async def new_link(request: Request) -> dict[str, Any]:
    """A fresh one-time sign-in URL for the dashboard, valid for 10 minutes."""
    token = _sessions(request).new_link_token(LINK_TTL_SECONDS)
    base = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}"
    return {"url": f"{base}/?token={token}", "expiresIn": int(LINK_TTL_SECONDS)}
