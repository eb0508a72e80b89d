"""``polpo peers list`` tells the truth: PeerService's access and admin flags agree
with what the gateway pipeline actually lets in, peer by peer."""

from __future__ import annotations

from pathlib import Path

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.testing import MemoryChannel, exchange, running_gateway
from tests.services.peers_helpers import gateway_config, loaded_for

CASES = {
    # peer id: how it got (or did not get) access
    "whatsapp:39123456789": "allowFrom entry, so admin",
    "whatsapp:39111222333": "dynamic allowlist",
    "whatsapp:39444555666": "stranger on an allowlist channel",
    "telegram:4242": "linked to the WhatsApp admin",
    "telegram:5151": "linked to the allowlisted WhatsApp peer",
    "telegram:99": "stranger on a pairing channel",
    "telegram:77": "dynamic allowlist",
}


async def test_peer_service_access_matches_the_gateway(tmp_path: Path) -> None:
    app = await Polpo.open(loaded_for(tmp_path / "proj", gateway_config()), clock=FakeClock())
    whatsapp, telegram = MemoryChannel("whatsapp"), MemoryChannel("telegram")
    try:
        await app.peers.allow("whatsapp:39111222333", by="cli")
        await app.peers.allow("telegram:77", by="cli")
        await app.peers.link("whatsapp:39123456789", "telegram:4242", by="cli")
        await app.peers.link("whatsapp:39111222333", "telegram:5151", by="cli")
        async with running_gateway(app, whatsapp, telegram) as gw:
            for peer_id, why in CASES.items():
                channel_name, ext = peer_id.split(":", 1)
                channel = whatsapp if channel_name == "whatsapp" else telegram
                replies = await exchange(gw, channel, ext, "/help")
                admitted = any("/status" in r for r in replies)
                shows_pair = any("/pair CODE" in r for r in replies)
                info = await app.peers.access(peer_id)
                assert (info.allowed, info.is_admin) == (admitted, shows_pair), (peer_id, why)
    finally:
        await app.close()
