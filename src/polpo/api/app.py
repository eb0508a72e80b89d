"""The FastAPI application: routers, auth, errors, the dashboard.

Every route under ``/api/v1`` except ``/api/v1/health`` needs
``Authorization: Bearer KEY`` when ``polpo serve`` has an API key; the check
is a middleware, so a router added later is covered without doing anything.
Errors are short JSON: ``{"error": "…"}`` with the status the
:class:`~polpo.errors.PolpoError` says.
"""

from __future__ import annotations

import hmac
import json
import time
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from polpo import __version__
from polpo.errors import AlreadyDecidedError, AmbiguousIdError, PolpoError

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.host import Host

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"

#: One line per resource: a module under ``polpo.api.routes`` exposing ``router``.
ROUTE_MODULES: list[str] = [
    "polpo.api.routes.health",
    "polpo.api.routes.status",
    "polpo.api.routes.tasks",
    "polpo.api.routes.missions",
    "polpo.api.routes.agents",
    "polpo.api.routes.approvals",
    "polpo.api.routes.channels",
    "polpo.api.routes.events",
    "polpo.api.routes.peers",
]

#: Reachable without the API key (a load balancer's or `polpo whatsapp status`'s probe).
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health"})


def create_app(app: Polpo, host: Host | None = None, api_key: str | None = None) -> FastAPI:
    api = FastAPI(
        title="Polpo",
        version=__version__,
        description="Tasks, missions, agents and approval gates of one Polpo project.",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    api.state.polpo = app
    api.state.host = host
    api.state.api_key = api_key
    api.state.started_at = time.monotonic()
    for name in ROUTE_MODULES:
        api.include_router(import_module(name).router, prefix=API_PREFIX)
    _install_errors(api)
    if STATIC_DIR.is_dir():
        api.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @api.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html")

    if api_key:
        api.add_middleware(BearerAuth, api_key=api_key)
    return api


class BearerAuth:
    """Pure ASGI middleware: ``/api/v1/*`` (health excepted) needs the bearer key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and (path == API_PREFIX or path.startswith(API_PREFIX + "/"))
            and path.rstrip("/") not in PUBLIC_PATHS
        ):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(
                    {"error": "missing or wrong API key: send Authorization: Bearer KEY"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error_body(exc: PolpoError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.message}
    if isinstance(exc, AmbiguousIdError):
        body["candidates"] = exc.candidates
    if isinstance(exc, AlreadyDecidedError):
        body.update(status=exc.status, resolvedBy=exc.resolved_by, resolvedAt=exc.resolved_at)
    return body


def _install_errors(api: FastAPI) -> None:
    @api.exception_handler(PolpoError)
    async def polpo_error(_: Request, exc: PolpoError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.http_status)

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", ""))
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)
