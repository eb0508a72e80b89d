"""Test helpers for Polpo and for anyone embedding it.

``MemoryChannel`` is a real channel without a network (see
:mod:`polpo.channels.memory`); :func:`running_gateway` runs the whole
gateway pipeline over it against a real project; :class:`RecordingResponder`
stands in for the chat model and remembers every call, so a test can prove
the model was (or was not) reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polpo.channels.memory import MemoryChannel, SentMessage
from polpo.llm.base import ChatReply, Picture

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.gateway.component import GatewayComponent
    from polpo.gateway.pipeline import ChannelSettings
    from polpo.llm.base import Responder


@dataclass
class ResponderCall:
    peer_id: str
    text: str
    history: list[Any]
    pictures: list[Picture] = field(default_factory=list)


@dataclass
class RecordingResponder:
    """A chat responder that answers at once and records each call.

    ``answer`` makes the reply text from the message (default: ``"echo: <text>"``).
    The stored history grows by one entry per turn, so tests can see sessions.
    """

    answer: Callable[[str], str] = field(default=lambda text: f"echo: {text}")
    calls: list[ResponderCall] = field(default_factory=list)

    async def respond(
        self, *, peer_id: str, text: str, history: list[Any], pictures: Sequence[Picture] = ()
    ) -> ChatReply:
        self.calls.append(ResponderCall(peer_id, text, list(history), list(pictures)))
        return ChatReply(self.answer(text), [*history, {"user": text[:200]}])


@asynccontextmanager
async def running_gateway(
    app: Polpo,
    *channels: MemoryChannel,
    responder: Responder | None = None,
    owner: str | None = None,
    configs: Mapping[str, ChannelSettings] | None = None,
    **options: Any,
) -> AsyncIterator[GatewayComponent]:
    """The gateway pipeline, its outbox dispatchers and ``channels``, started; stopped after."""
    from polpo.gateway.component import GatewayComponent

    component = GatewayComponent(
        app, channels, responder=responder, owner=owner, configs=configs, **options
    )
    await component.start()
    try:
        yield component
    finally:
        await component.stop()


async def exchange(
    component: GatewayComponent, channel: MemoryChannel, peer: str, text: str, **fields: Any
) -> list[str]:
    """``peer`` writes ``text`` on ``channel``; returns the texts sent back once all is settled."""
    before = len(channel.sent)
    await channel.receive(peer, text, **fields)
    await component.settle()
    return [s.text for s in channel.sent[before:]]


__all__ = [
    "MemoryChannel",
    "RecordingResponder",
    "ResponderCall",
    "SentMessage",
    "exchange",
    "running_gateway",
]
