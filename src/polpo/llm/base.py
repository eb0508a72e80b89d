"""What the gateway needs from the chat agent, as a small protocol.

The gateway owns sessions (storage, idle reset, ``/new``); the responder owns
the agentic loop. History is pydantic-ai's message list serialised to JSON
(``ModelMessagesTypeAdapter.dump_python(..., mode="json")``), bounded by the
responder before it is handed back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Picture:
    """A picture for the chat model to see with the turn's text (a photo sent on WhatsApp).

    Only the turn sees its bytes: the stored history keeps a short note in
    its place, so pictures never reach the database."""

    data: bytes
    #: ``image/jpeg``, ``image/png``, ``image/webp``, ``image/gif``
    mime: str


@dataclass(frozen=True)
class ChatReply:
    #: Markdown text to send (the gateway formats and splits it per channel)
    text: str
    #: the session history to store (JSON-able, already bounded)
    history: list[Any] = field(default_factory=list)
    #: set when the turn failed (model/network error, limit hit); ``text`` is then the apology
    error: str | None = None


class Responder(Protocol):
    async def respond(
        self, *, peer_id: str, text: str, history: list[Any], pictures: Sequence[Picture] = ()
    ) -> ChatReply:
        """Run one chat turn for ``peer_id``. Never raises for model or network errors.

        ``pictures`` are passed only when the message carried some (and the
        model accepts them), so a responder that never sees any may omit it."""
        ...
