"""The outbound message-id contract: a channel may mint ids; others are left alone."""

from __future__ import annotations

from polpo.channels.base import Channel, OutboundMessage, new_message_id
from polpo.testing import MemoryChannel


async def test_a_channel_that_mints_ids_sends_with_the_assigned_one() -> None:
    channel = MemoryChannel("whatsapp", mint_ids=True)
    await channel.start(_Listener())
    first, second = new_message_id(channel), new_message_id(channel)
    assert first and second and first != second
    result = await channel.send(OutboundMessage("chat", "hi", message_id=first))
    assert result.message_id == first
    assert channel.sent[-1].message_id == first


async def test_channels_without_minting_get_none_and_stay_channels() -> None:
    plain = MemoryChannel("telegram")
    assert new_message_id(plain) is None
    assert new_message_id(object()) is None  # no such method at all: the network chooses
    assert isinstance(plain, Channel)


class _Listener:
    async def on_message(self, message: object) -> None:
        pass

    async def on_status(self, status: object) -> None:
        pass
