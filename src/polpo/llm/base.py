"""What the gateway needs from the chat agent, as a small protocol.

The gateway owns sessions (storage, idle reset, ``/new``); the responder owns
the agentic loop. History is pydantic-ai's message list serialised to JSON
(``ModelMessagesTypeAdapter.dump_python(..., mode="json")``), bounded by the
responder before it is handed back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatReply:
    #: Markdown text to send (the gateway formats and splits it per channel)
    text: str
    #: the session history to store (JSON-able, already bounded)
    history: list[Any] = field(default_factory=list)
    #: set when the turn failed (model/network error, limit hit); ``text`` is then the apology
    error: str | None = None


class Responder(Protocol):
    async def respond(self, *, peer_id: str, text: str, history: list[Any]) -> ChatReply:
        """Run one chat turn for ``peer_id``. Never raises for model or network errors."""
        ...
