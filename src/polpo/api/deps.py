"""What route handlers get from the application: the open project and the host."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from polpo.app import Polpo


def get_polpo(request: Request) -> Polpo:
    app: Polpo = request.app.state.polpo
    return app


def get_registry(request: Request) -> dict[str, Any]:
    """``host.registry`` of ``polpo serve`` (empty when the API runs without a host)."""
    host = request.app.state.host
    return host.registry if host is not None else {}


PolpoDep = Annotated[Polpo, Depends(get_polpo)]
RegistryDep = Annotated[dict[str, Any], Depends(get_registry)]

#: Recorded as ``createdBy`` / ``resolvedBy`` when a request names no one.
API_ACTOR = "api"
