"""The gateway and the peer service decide access the same way, with the same reason.

Each row is a config, what happened before (allowlist entries, links) and a
peer writing ``/help``: the gateway's admission (on the project's real
database) and ``PeerService.access`` must agree on allowed and why — the
drifts of issue 10 included (an admin on an open channel, ``allowFrom: ["*"]``,
a link to an allowed identity on another channel).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.channels.base import InboundMessage
from polpo.clock import FakeClock
from polpo.core.access import Access
from polpo.gateway.admission import Admission, Admitted
from polpo.services.access import AccessRules
from polpo.store import inbox as inbox_store
from polpo.store.tx import Tx
from tests.conftest import BASE_CONFIG
from tests.services.peers_helpers import loaded_for

OWNER = "39123456789"


@dataclass(frozen=True)
class Row:
    peer: str  # channel:external id, as the gateway makes it
    expect: tuple[bool, str]
    whatsapp: dict[str, Any] = field(default_factory=lambda: {"dmPolicy": "allowlist"})
    telegram: dict[str, Any] = field(default_factory=lambda: {"dmPolicy": "pairing"})
    allowed: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()


ROWS = {
    "admin on an open channel": Row(
        f"whatsapp:{OWNER}", (True, "admin"), whatsapp={"dmPolicy": "open", "admins": [OWNER]}
    ),
    "allowFrom star": Row("whatsapp:39555", (True, "open"), whatsapp={"allowFrom": ["*"]}),
    "open channel": Row("whatsapp:39555", (True, "open"), whatsapp={"dmPolicy": "open"}),
    "allowFrom entry (so admin)": Row(
        f"whatsapp:{OWNER}", (True, "admin"), whatsapp={"allowFrom": [f"+{OWNER}"]}
    ),
    "allowFrom entry, other admins": Row(
        "whatsapp:39777",
        (True, "allowFrom"),
        whatsapp={"allowFrom": ["+39777"], "admins": [OWNER]},
    ),
    "dynamic allowlist": Row("whatsapp:39111", (True, "allowlist"), allowed=("whatsapp:39111",)),
    "allowlisted on an open channel": Row(
        "whatsapp:39111",
        (True, "open"),
        whatsapp={"dmPolicy": "open"},
        allowed=("whatsapp:39111",),
    ),
    "stranger on an allowlist channel": Row("whatsapp:39444", (False, "not allowed")),
    "stranger on a pairing channel": Row("telegram:99", (False, "not allowed")),
    "linked to the WhatsApp admin": Row(
        "telegram:4242",
        (True, "linked"),
        whatsapp={"allowFrom": [f"+{OWNER}"]},
        links=((f"whatsapp:{OWNER}", "telegram:4242"),),
    ),
    "linked to an allowlisted peer": Row(
        "telegram:5151",
        (True, "linked"),
        allowed=("whatsapp:39111",),
        links=(("whatsapp:39111", "telegram:5151"),),
    ),
    "linked to someone on a disabled channel": Row(
        "telegram:6161",
        (False, "not allowed"),
        whatsapp={"dmPolicy": "disabled", "allowFrom": ["+39888"], "admins": []},
        links=(("whatsapp:39888", "telegram:6161"),),
    ),
    "allowlisted and linked": Row(
        "telegram:7171",
        (True, "allowlist"),
        allowed=("telegram:7171", "whatsapp:39111"),
        links=(("whatsapp:39111", "telegram:7171"),),
    ),
}


def _config(row: Row) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["settings"]["notifications"] = {
        "channels": {
            "whatsapp": {"type": "whatsapp", "gateway": {"enableInbound": True, **row.whatsapp}},
            "telegram": {"type": "telegram", "gateway": {"enableInbound": True, **row.telegram}},
        }
    }
    return cfg


async def _gateway_access(app: Polpo, peer_id: str) -> Access:
    channel, external = peer_id.split(":", 1)
    message = InboundMessage(channel, external, external, f"m-{peer_id}", "/help", 0.0)
    admission = Admission(AccessRules(app.config), owner=None, turns_of=lambda _: 0)

    async def admit(tx: Tx) -> Access | None:
        inbox_id = await inbox_store.insert(
            tx.conn,
            channel=channel,
            message_id=message.message_id,
            peer_id=peer_id,
            chat_id=external,
            text=message.text,
            payload={},
            sent_at=0.0,
            now=tx.now,
            status="received",
            outcome=None,
            owner=None,
        )
        assert inbox_id is not None
        decided = await admission.decide(tx, inbox_id, message)
        return decided.access

    access = await app.ctx.write_batcher().run(admit)
    assert access is not None
    return access


@pytest.mark.parametrize("name", list(ROWS))
async def test_gateway_and_peer_service_agree_on_decision_and_reason(
    tmp_path: Path, name: str
) -> None:
    row = ROWS[name]
    app = await Polpo.open(loaded_for(tmp_path / "proj", _config(row)), clock=FakeClock())
    try:
        for peer in row.allowed:
            await app.peers.allow(peer, by="cli")
        for a, b in row.links:
            await app.peers.link(a, b, by="cli")
        gateway = await _gateway_access(app, row.peer)
        service = await app.peers.access(row.peer)
        assert (gateway.allowed, gateway.why) == row.expect
        assert (service.allowed, service.why) == row.expect
        assert gateway.is_admin == service.is_admin
        assert gateway.via == service.via
    finally:
        await app.close()


def test_admitted_carries_its_access() -> None:
    # the gateway's result types say why, whichever way admission went
    assert "access" in Admitted.__dataclass_fields__
