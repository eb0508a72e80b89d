"""The free-text chat agent (SPEC §5): one pydantic-ai turn per message.

:class:`ChatAgent` is the gateway's :class:`~polpo.llm.base.Responder`. A
turn is the real pydantic-ai agent loop over the tools of
:mod:`polpo.llm.chat_tools`, within the limits of ``settings.chat``: at most
``maxToolRounds`` rounds of tool calls and ``turnTimeoutSeconds`` in all.

Whatever goes wrong — no model configured, the network, the provider, a
limit, a bug — the user gets a short answer and the gateway a
:class:`ChatReply` with ``error`` set; :meth:`ChatAgent.respond` never
raises (cancellation aside) and never returns silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_ai import Agent, UsageLimits, capture_run_messages
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAuthenticationError,
    ModelNotFoundError,
    ModelRateLimitError,
    UsageLimitExceeded,
)
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserContent,
)
from pydantic_ai.models import Model

from polpo.clock import Clock
from polpo.errors import ModelNotConfiguredError
from polpo.llm.base import ChatReply, Picture
from polpo.llm.chat_prompt import chat_instructions
from polpo.llm.chat_tools import CHAT_TOOLS, ChatDeps
from polpo.llm.history import (
    CHARS_PER_TOKEN,
    bound_history,
    clip_text,
    dump_history,
    load_history,
    text_tokens,
)
from polpo.llm.models import chat_model_string, resolve_model

if TYPE_CHECKING:
    from polpo.app import Polpo

log = logging.getLogger(__name__)

EMPTY_PROMPT = "I'm here. Ask me about the project, or send /help for the commands."
NO_MODEL = (
    "I can't chat yet: no AI model is configured. "
    'Set "orchestratorModel" in .polpo/polpo.json (e.g. "openai:gpt-4.1-mini") '
    "and its API key, then restart Polpo. Commands work meanwhile: /help"
)
BAD_MODEL = "I can't chat yet. {reason} Then restart Polpo. Commands work meanwhile: /help"
NO_ANSWER = "Sorry, I have no answer to that. Could you put it another way?"
DONE = "Done."
APOLOGY_LIMIT = (
    "Sorry, that needed more steps than I may take for one message ({rounds}). "
    "Try asking for less at once."
)
APOLOGY_TIMEOUT = "Sorry, that took too long (over {seconds:g} s), so I stopped. Please try again."
APOLOGY_AUTH = (
    "Sorry, the AI provider refused Polpo's API key. Check the key's environment variable."
)
APOLOGY_NOT_FOUND = (
    'Sorry, the AI provider does not know the model "{model}". Check "orchestratorModel".'
)
APOLOGY_RATE = "Sorry, the AI provider is rate-limiting me. Please try again in a minute."
APOLOGY_MODEL = (
    "Sorry, I couldn't reach the AI model just now. Please try again in a moment; "
    "commands like /status still work."
)


class ChatAgent:
    """Answers free text with the project's tools. Stateless between turns:
    the gateway keeps each peer's history and passes it in."""

    def __init__(self, app: Polpo, model: Model | None = None, *, clock: Clock | None = None):
        self.app = app
        self.clock = clock or app.clock
        self._model = model
        self._model_string: str | None = None
        self._agent: Agent[ChatDeps, str] = Agent(
            deps_type=ChatDeps,
            output_type=str,
            instructions=chat_instructions,
            tools=CHAT_TOOLS,
            name="polpo-chat",
            retries=2,
        )

    @property
    def tool_names(self) -> list[str]:
        return [t.name for t in CHAT_TOOLS]

    def _resolve(self) -> Model:
        """The model given, else the configured one (built once, rebuilt if its string changes)."""
        wanted = chat_model_string(self.app.config)
        if self._model is None or (self._model_string is not None and wanted != self._model_string):
            self._model = resolve_model(wanted, self.app.config)
            self._model_string = wanted
        return self._model

    async def respond(
        self, *, peer_id: str, text: str, history: list[Any], pictures: Sequence[Picture] = ()
    ) -> ChatReply:
        try:
            return await self._turn(peer_id, text, history, pictures)
        except Exception as e:  # a bug of ours: still an answer, and the session is kept as it was
            log.exception("chat turn crashed")
            kept = history if isinstance(history, list) else []
            return ChatReply(APOLOGY_MODEL, kept, error=f"internal error: {type(e).__name__}: {e}")

    async def _turn(
        self, peer_id: str, text: str, history: list[Any], pictures: Sequence[Picture]
    ) -> ChatReply:
        chat = self.app.config.settings.chat
        budget = chat.history_max_tokens
        past = load_history(history)
        if (not text or not text.strip()) and not pictures:
            return ChatReply(EMPTY_PROMPT, dump_history(bound_history(past, budget)))
        try:
            model = self._resolve()
        except ModelNotConfiguredError as e:
            configured = chat_model_string(self.app.config)
            return ChatReply(
                BAD_MODEL.format(reason=e.message) if configured else NO_MODEL,
                dump_history(bound_history(past, budget)),
                error=f"model not configured: {e.message}",
            )
        words = clip_text(text, budget * CHARS_PER_TOKEN // 2)
        past = bound_history(past, budget - text_tokens(words))
        prompt: str | list[UserContent] = words
        if pictures:  # the model sees them this turn; the stored history keeps a note
            prompt = [words, *(BinaryContent(p.data, media_type=p.mime) for p in pictures)]
        deps = ChatDeps(app=self.app, peer_id=peer_id, clock=self.clock)
        with capture_run_messages() as captured:
            try:
                async with asyncio.timeout(chat.turn_timeout_seconds):
                    result = await self._agent.run(
                        prompt,
                        message_history=past,
                        deps=deps,
                        model=model,
                        usage_limits=UsageLimits(request_limit=chat.max_tool_rounds + 1),
                    )
            except Exception as e:  # every failure becomes an apology, never a crash
                reply, error = self._apology(e, model)
                messages = [*captured, ModelResponse(parts=[TextPart(reply)])]
                return ChatReply(reply, dump_history(bound_history(messages, budget)), error=error)
        answer = result.output.strip() or (
            DONE if _called_tools(result.new_messages()) else NO_ANSWER
        )
        return ChatReply(answer, dump_history(bound_history(result.all_messages(), budget)))

    def _apology(self, e: Exception, model: Model) -> tuple[str, str]:
        chat = self.app.config.settings.chat
        if isinstance(e, UsageLimitExceeded):
            log.info("chat turn hit the tool-round limit: %s", e)
            return APOLOGY_LIMIT.format(rounds=chat.max_tool_rounds), f"limit: {e}"
        if isinstance(e, TimeoutError):
            log.info("chat turn timed out after %ss", chat.turn_timeout_seconds)
            return (
                APOLOGY_TIMEOUT.format(seconds=chat.turn_timeout_seconds),
                f"timeout after {chat.turn_timeout_seconds:g}s",
            )
        detail = f"{type(e).__name__}: {e}"[:500]
        log.warning("chat turn failed: %s", detail, exc_info=not isinstance(e, AgentRunError))
        if isinstance(e, ModelAuthenticationError):
            return APOLOGY_AUTH, f"model error: {detail}"
        if isinstance(e, ModelNotFoundError):
            return APOLOGY_NOT_FOUND.format(model=model.model_name), f"model error: {detail}"
        if isinstance(e, ModelRateLimitError):
            return APOLOGY_RATE, f"model error: {detail}"
        return APOLOGY_MODEL, f"model error: {detail}"


def _called_tools(messages: list[ModelMessage]) -> bool:
    return any(
        isinstance(m, ModelResponse) and any(isinstance(p, ToolCallPart) for p in m.parts)
        for m in messages
    )
