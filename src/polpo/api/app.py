"""The FastAPI application: routers, the security layers, errors, the dashboard.

Before any route runs, in this order (outermost first): security headers on
every response (:mod:`~polpo.api.headers`), the ``Host`` check against DNS
rebinding (:mod:`~polpo.api.hosts`), the cross-site write check
(:mod:`~polpo.api.csrf`), and credentials (:mod:`~polpo.api.auth`: a
dashboard session or a bearer token). They are middlewares, so a router
added later is covered without doing anything. Errors are short JSON:
``{"error": "…"}`` with the status the :class:`~polpo.errors.PolpoError` says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from polpo import __version__
from polpo.api.auth import API_PREFIX, RequireAuth
from polpo.api.csrf import SameOriginWrites
from polpo.api.docs import SWAGGER_STATIC, swagger_assets
from polpo.api.headers import SecurityHeaders
from polpo.api.hosts import HostCheck, allowed_host_names
from polpo.api.sessions import Sessions
from polpo.errors import AlreadyDecidedError, AmbiguousIdError, PolpoError

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.host import Host

STATIC_DIR = Path(__file__).parent / "static"

#: One line per resource: a module under ``polpo.api.routes`` exposing ``router``.
ROUTE_MODULES: list[str] = [
    "polpo.api.routes.health",
    "polpo.api.routes.status",
    "polpo.api.routes.tasks",
    "polpo.api.routes.missions",
    "polpo.api.routes.agents",
    "polpo.api.routes.approvals",
    "polpo.api.routes.channel_stream",  # GET /channels/stream (before /channels/{name})
    "polpo.api.routes.channels",
    "polpo.api.routes.events",
    "polpo.api.routes.peers",
    "polpo.api.routes.runs",  # GET /tasks/{id}/runs
]


def create_app(
    app: Polpo,
    host: Host | None = None,
    *,
    api_key: str | None = None,
    sessions: Sessions | None = None,
    bound: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
) -> FastAPI:
    """The API of ``app``; ``bound`` and ``allowed_hosts`` decide which ``Host`` is ours."""
    from polpo.api import dashboard, docs

    api = FastAPI(
        title="Polpo",
        version=__version__,
        description="Tasks, missions, agents and approval gates of one Polpo project.",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    api.state.polpo = app
    api.state.host = host
    api.state.sessions = sessions = sessions or Sessions()
    api.state.static_dir = STATIC_DIR
    api.state.started_at = time.monotonic()
    for name in ROUTE_MODULES:
        api.include_router(import_module(name).router, prefix=API_PREFIX)
    api.include_router(dashboard.router)
    api.include_router(docs.router)
    _install_errors(api)
    assets = swagger_assets()
    if assets is not None:
        api.mount(SWAGGER_STATIC, StaticFiles(directory=assets), name="swagger")
    api.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # add_middleware wraps: the last added runs first.
    api.add_middleware(RequireAuth, sessions=sessions, api_key=api_key)
    api.add_middleware(SameOriginWrites)
    api.add_middleware(HostCheck, allowed=allowed_host_names(bound, allowed_hosts))
    api.add_middleware(SecurityHeaders)
    return api


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
