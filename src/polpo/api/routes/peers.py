"""``/api/v1/peers`` and ``/api/v1/pairing``: access, the allowlist, links, pairing approval.

The same :class:`~polpo.services.peers.PeerService` as the CLI and the
``/pair`` and ``/link`` chat commands. Peer ids in paths may be raw forms
(``whatsapp:+39 123…`` URL-encoded, a JID).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from polpo.api.deps import API_ACTOR, PolpoDep

router = APIRouter(tags=["peers"])


class ByBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = None


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the peer that stays canonical
    a: str = Field(min_length=1, max_length=200)
    #: the peer that joins it
    b: str = Field(min_length=1, max_length=200)
    by: str | None = None


@router.get("/peers")
async def list_peers(app: PolpoDep, channel: str | None = None) -> list[dict[str, Any]]:
    return [p.to_dict() for p in await app.peers.list(channel=channel)]


@router.post("/peers/link")
async def link(app: PolpoDep, body: LinkBody) -> dict[str, Any]:
    return (await app.peers.link(body.a, body.b, by=body.by or API_ACTOR)).to_dict()


@router.get("/peers/{peer}")
async def get_peer(app: PolpoDep, peer: str) -> dict[str, Any]:
    return (await app.peers.get(peer)).to_dict()


@router.post("/peers/{peer}/allow")
async def allow(app: PolpoDep, peer: str, body: ByBody | None = None) -> dict[str, Any]:
    by = (body.by if body else None) or API_ACTOR
    return (await app.peers.allow(peer, by=by, source="api")).to_dict()


@router.post("/peers/{peer}/revoke")
async def revoke(app: PolpoDep, peer: str, body: ByBody | None = None) -> dict[str, Any]:
    by = (body.by if body else None) or API_ACTOR
    return (await app.peers.revoke(peer, by=by)).to_dict()


@router.post("/peers/{peer}/unlink")
async def unlink(app: PolpoDep, peer: str, body: ByBody | None = None) -> dict[str, Any]:
    by = (body.by if body else None) or API_ACTOR
    return (await app.peers.unlink(peer, by=by)).to_dict()


@router.get("/pairing")
async def list_pairing(
    app: PolpoDep,
    status: Annotated[
        str, Query(description="pending (default), approved, expired, or all")
    ] = "pending",
) -> list[dict[str, Any]]:
    return [r.to_dict() for r in await app.peers.list_pairing(status)]


@router.post("/pairing/{code}/approve")
async def approve_pairing(app: PolpoDep, code: str, body: ByBody | None = None) -> dict[str, Any]:
    by = (body.by if body else None) or API_ACTOR
    return (await app.peers.approve_pairing(code, by=by)).to_dict()
